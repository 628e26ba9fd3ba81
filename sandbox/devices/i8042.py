"""The 8042 keyboard controller (0x60 data, 0x64 status/command), minimal.

Serial is this machine's console, so no key is ever typed here, but guests talk to
the controller anyway: to open the A20 gate through its output port (commands 0xD1,
0xDD, 0xDF), to reset the machine (0xFE), and to probe and configure the keyboard.
One output buffer holds the next byte for the CPU; bytes waiting behind it (controller
replies, keyboard replies, scancodes given to ``feed_scancodes``) enter it as soon as
the guest has read the previous one, each raising IRQ 1 if the command byte allows.
There is no mouse: commands for the auxiliary device are swallowed.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from sandbox.devices.base import Device, DeviceContext

# Status register bits.
ST_OBF, ST_IBF, ST_SYS, ST_CMD, ST_UNLOCKED, ST_AUX_OBF = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
# Command byte ("controller configuration byte") bits.
CB_KBD_INT, CB_AUX_INT, CB_SYS, CB_KBD_OFF, CB_AUX_OFF, CB_TRANSLATE = 0x01, 0x02, 0x04, 0x10, 0x20, 0x40
# Output port bits: bit 0 low holds the CPU in reset, bit 1 is the A20 gate.
OUT_RESET, OUT_A20 = 0x01, 0x02
ACK, RESEND, SELF_TEST_OK = 0xFA, 0xFE, 0xAA

KBD, AUX, CTRL = "keyboard", "aux", "controller"


class I8042Command(Device):
    """Port 0x64: status (read) and controller commands (write)."""

    description = "The keyboard controller's status and command port."

    def __init__(self, name: str, ctx: DeviceContext | None, kbc: "I8042") -> None:
        super().__init__(name, ctx)
        self.kbc = kbc

    def read(self, offset: int, size: int) -> int:
        return self.kbc.status

    def write(self, offset: int, size: int, value: int) -> None:
        self.kbc.controller_command(value & 0xFF)


class I8042(Device):
    description = "An 8042 keyboard controller: keyboard bytes on IRQ 1, plus the A20 gate and the reset line of old PCs."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        super().__init__(name, ctx)
        self.irq_kbd = self.ctx.irq(1)
        self.irq_aux = self.ctx.irq(12)
        self.command = I8042Command(f"{name}.command", self.ctx, self)
        self._power_on()

    def _power_on(self) -> None:
        self.command_byte = CB_KBD_INT | CB_AUX_INT      # as QEMU's controller starts
        self.output_port = 0xCC | OUT_A20 | OUT_RESET
        self.flags = ST_UNLOCKED
        self.obf: tuple[int, str] | None = None         # the byte in the output buffer
        self.last = 0
        self.queue: deque[tuple[int, str]] = deque()
        self.awaiting: int | None = None                 # controller command wanting a data byte
        self.kbd_awaiting: int | None = None             # keyboard command wanting a parameter
        self.scanning = True
        self.scancode_set = 2
        self.leds = 0
        self._update()

    def reset(self) -> None:
        self._power_on()

    @property
    def status(self) -> int:
        value = self.flags
        if self.obf is not None:
            value |= ST_OBF | (ST_AUX_OBF if self.obf[1] == AUX else 0)
        return value

    # --- port 0x60 --------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if self.obf is not None:
            self.last = self.obf[0]
            self.obf = None
            self._update()
        return self.last

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        self.flags &= ~ST_CMD
        pending, self.awaiting = self.awaiting, None
        if pending is not None:
            CONTROLLER_DATA[pending][1](self, value)
        else:
            self.command_byte &= ~CB_KBD_OFF             # talking to the keyboard enables it
            self.keyboard_command(value)
        self._update()

    # --- controller commands (port 0x64) ----------------------------------------------------
    def controller_command(self, code: int) -> None:
        self.flags |= ST_CMD
        self.awaiting = None
        if code in CONTROLLER_DATA:
            self.awaiting = code                         # the next 0x60 write is its data
        elif 0x20 <= code <= 0x3F:
            self._reply(self.command_byte if code == 0x20 else 0x00)
        elif code >= 0xF0:
            if not code & OUT_RESET:                     # pulse output port bit 0: reset
                self.ctx.reset()
        elif code in CONTROLLER_COMMANDS:
            CONTROLLER_COMMANDS[code][1](self)
        self._update()

    def _reply(self, byte: int, source: str = CTRL) -> None:
        self.queue.append((byte, source))

    def _write_output_port(self, value: int) -> None:
        self.output_port = value
        self.ctx.set_a20(bool(value & OUT_A20))
        if not value & OUT_RESET:
            self.ctx.reset()

    def _write_command_byte(self, value: int) -> None:
        self.command_byte = value
        self.flags = (self.flags & ~ST_SYS) | (value & CB_SYS)

    def _self_test(self) -> None:
        self.flags |= ST_SYS
        self._reply(0x55)

    # --- the keyboard behind it -----------------------------------------------------------
    def keyboard_command(self, value: int) -> None:
        if self.kbd_awaiting is not None:
            command, self.kbd_awaiting = self.kbd_awaiting, None
            self._keyboard_parameter(command, value)
            return
        entry = KEYBOARD_COMMANDS.get(value)
        if entry is None:
            self._reply(RESEND, KBD)
            return
        _, replies, takes_parameter = entry
        for byte in replies:
            self._reply(byte, KBD)
        if takes_parameter:
            self.kbd_awaiting = value
        elif value in (0xF4, 0xF5, 0xF6, 0xFF):
            self.scanning = value != 0xF5

    def _keyboard_parameter(self, command: int, value: int) -> None:
        self._reply(ACK, KBD)
        if command == 0xED:
            self.leds = value & 7
        elif command == 0xF0:
            if value == 0:
                self._reply(self.scancode_set, KBD)
            elif value in (1, 2, 3):
                self.scancode_set = value

    def feed_scancodes(self, data: bytes) -> None:
        """Key presses from the host, as the CPU should read them (set 1 codes)."""
        if self.scanning:
            for byte in data:
                self._reply(byte, KBD)
            self._update()

    # --- output buffer and interrupts ---------------------------------------------------------
    def _deliverable(self, source: str) -> bool:
        if source == KBD:
            return not self.command_byte & CB_KBD_OFF
        if source == AUX:
            return not self.command_byte & CB_AUX_OFF
        return True

    def _update(self) -> None:
        if self.obf is None:
            for item in self.queue:
                if self._deliverable(item[1]):
                    self.queue.remove(item)
                    self.obf = item
                    break
        source = self.obf[1] if self.obf is not None else None
        self._drive(self.irq_kbd, source in (KBD, CTRL) and bool(self.command_byte & CB_KBD_INT))
        self._drive(self.irq_aux, source == AUX and bool(self.command_byte & CB_AUX_INT))

    @staticmethod
    def _drive(line: Any, level: bool) -> None:
        if level and not line.level:
            line.raise_()
        elif not level and line.level:
            line.lower()

    def state(self) -> dict[str, Any]:
        return {"status": self.status, "command_byte": self.command_byte,
                "output_port": self.output_port, "a20": bool(self.output_port & OUT_A20),
                "output_buffer": None if self.obf is None else self.obf[0],
                "queued": len(self.queue), "scanning": self.scanning, "leds": self.leds}


def _set_bits(bits: int, on: bool) -> Callable[[I8042], None]:
    def action(kbc: I8042) -> None:
        kbc.command_byte = kbc.command_byte | bits if on else kbc.command_byte & ~bits
    return action


def _a20(on: bool) -> Callable[[I8042], None]:
    def action(kbc: I8042) -> None:
        kbc._write_output_port(kbc.output_port | OUT_A20 if on else kbc.output_port & ~OUT_A20)
    return action


# Controller commands without a data byte: code -> (what it does, action).
CONTROLLER_COMMANDS: dict[int, tuple[str, Callable[[I8042], None]]] = {
    0xA7: ("disable the auxiliary (mouse) port", _set_bits(CB_AUX_OFF, True)),
    0xA8: ("enable the auxiliary (mouse) port", _set_bits(CB_AUX_OFF, False)),
    0xA9: ("test the auxiliary port: 0x00 means it works", lambda k: k._reply(0x00)),
    0xAA: ("controller self-test: replies 0x55 and sets the system flag", I8042._self_test),
    0xAB: ("test the keyboard port: 0x00 means it works", lambda k: k._reply(0x00)),
    0xAD: ("disable the keyboard", _set_bits(CB_KBD_OFF, True)),
    0xAE: ("enable the keyboard", _set_bits(CB_KBD_OFF, False)),
    0xC0: ("read the input port", lambda k: k._reply(0x00)),
    0xD0: ("read the output port (A20 in bit 1)", lambda k: k._reply(k.output_port)),
    0xDD: ("close the A20 gate", _a20(False)),
    0xDF: ("open the A20 gate", _a20(True)),
    0xE0: ("read the test inputs", lambda k: k._reply(0x00)),
}

# Controller commands whose data byte follows at port 0x60: code -> (what, action(value)).
CONTROLLER_DATA: dict[int, tuple[str, Callable[[I8042, int], None]]] = {
    0x60: ("write the command byte", I8042._write_command_byte),
    **{code: ("write controller RAM", lambda k, v: None) for code in range(0x61, 0x80)},
    0xD1: ("write the output port: bit 1 is the A20 gate, bit 0 low resets", I8042._write_output_port),
    0xD2: ("put a byte in the output buffer as if the keyboard sent it", lambda k, v: k._reply(v, KBD)),
    0xD3: ("put a byte in the output buffer as if the mouse sent it", lambda k, v: k._reply(v, AUX)),
    0xD4: ("send a byte to the mouse (there is none)", lambda k, v: None),
}

# Keyboard commands: code -> (what, replies, takes a parameter byte).
KEYBOARD_COMMANDS: dict[int, tuple[str, tuple[int, ...], bool]] = {
    0xED: ("set the LEDs", (ACK,), True),
    0xEE: ("echo", (0xEE,), False),
    0xF0: ("get or set the scancode set", (ACK,), True),
    0xF2: ("identify: an MF2 keyboard", (ACK, 0xAB, 0x83), False),
    0xF3: ("set the typematic rate and delay", (ACK,), True),
    0xF4: ("enable scanning", (ACK,), False),
    0xF5: ("disable scanning", (ACK,), False),
    0xF6: ("restore defaults", (ACK,), False),
    0xFF: ("reset and self-test", (ACK, SELF_TEST_OK), False),
}
