"""The lesson engine: format loader, step player, predictions, progress, terminal player."""
from lessons.engine.format import (Lesson, LessonEntry, LessonFormatError, Step, find_lesson, load_index,
                                   load_lesson)
from lessons.engine.player import LessonPlayer, PredictionResult, StepResult
from lessons.engine.progress import Progress

__all__ = ["Lesson", "LessonEntry", "LessonFormatError", "LessonPlayer", "PredictionResult", "Progress",
           "Step", "StepResult", "find_lesson", "load_index", "load_lesson"]
