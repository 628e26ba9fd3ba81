"""A raw disk image: the guest's sector N is the file's bytes N*512 .. N*512+511."""
from __future__ import annotations

import os

from sandbox.errors import ImageError


class RawImage:
    format = "raw"

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        try:
            self._fd = os.open(self.path, os.O_RDONLY if readonly else os.O_RDWR)
        except FileNotFoundError:
            raise ImageError(f"{self.path}: disk image not found") from None
        except IsADirectoryError:
            raise ImageError(f"{self.path}: is a directory, not a disk image") from None
        except PermissionError:
            if readonly:
                raise ImageError(f"{self.path}: disk image is not readable") from None
            # A read-only file still boots: the disk becomes read-only.
            self.readonly = True
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError as e:
                raise ImageError(f"{self.path}: cannot open disk image ({e.strerror})") from None
        except OSError as e:
            raise ImageError(f"{self.path}: cannot open disk image ({e.strerror})") from None
        self._size = os.fstat(self._fd).st_size

    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset) if offset < self._size else b""
        return data + bytes(length - len(data))

    def write(self, offset: int, data: bytes) -> None:
        """Write inside the disk; a virtual disk never grows (a guest writing past its
        end gets an error from its device model, as on a real disk)."""
        if self.readonly:
            raise PermissionError(f"{self.path} is read-only")
        if offset + len(data) > self._size:
            raise ImageError(f"{self.path}: write past the end of the disk ({offset + len(data)} > {self._size})")
        os.pwrite(self._fd, data, offset)

    def flush(self) -> None:
        if not self.readonly:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RawImage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
