"""``personae chat`` under a pseudo-terminal, as a person uses it: a card persona's
greeting is shown, Ctrl-C while a reply is written stops it at once (stored as far as it
was shown, marked ``stopped``, and it says so), Ctrl-C at the prompt leaves at once,
never with a traceback."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Terminal:
    def __init__(self, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()

        def controlling() -> None:  # the pty becomes the chat's terminal: ^C is SIGINT
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.runtime.chat_fake"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=REPO,
            start_new_session=True,
            preexec_fn=controlling,  # noqa: PLW1509 (no threads in the test process here)
        )
        os.close(slave)
        self.seen = ""

    def until(self, text: str, timeout_s: float = 120.0) -> str:
        """Everything shown up to ``text`` (which must come within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while text not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} in {self.seen!r}"
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk.decode(errors="replace")
        shown, found, rest = self.seen.partition(text)
        assert found, f"no {text!r} in {self.seen!r}"
        self.seen = rest
        return shown

    def rest(self) -> str:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return self.seen
            if not chunk:
                return self.seen
            self.seen += chunk.decode(errors="replace")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_greeting_ctrl_c_stops_a_reply_and_ctrl_c_at_the_prompt_leaves(
    cli_env: dict[str, str],
) -> None:
    env = cli_env | {"TERM": "dumb", "FAKE_TOKENS": "400", "FAKE_TOKEN_DELAY_S": "0.05"}
    term = Terminal(env | {"PYTHONPATH": str(REPO)})
    try:
        opening = term.until("you> ")
        assert "small demo" in opening and "PERSONAE_LLM=gguf:" in opening
        assert (
            "Welcome aboard, alice. Mind the rigging." in opening
            or "You're late, navigator." in opening
        ), opening
        term.type("Tell me about the storm.\n")
        term.until("The storm came")  # the reply is being written (20 s in all)
        pressed = time.monotonic()
        term.type("\x03")
        stopped = term.until("you> ", timeout_s=10)
        assert time.monotonic() - pressed < 3, "stopped at once, not after the reply"
        assert "[stopped]" in stopped, stopped
        pressed = time.monotonic()
        term.type("\x03")  # at the prompt: leaves at once, no Enter needed
        assert term.proc.wait(timeout=30) == 0
        assert time.monotonic() - pressed < 15
        after = term.rest()
        everything = opening + stopped + after
        assert "Traceback" not in everything and "Error" not in everything, everything
        [reply] = [ln for ln in after.splitlines() if ln.startswith("stored: persona cut=stopped")]
        assert "The storm came" in reply
    finally:
        term.close()
