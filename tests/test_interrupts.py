"""SIGTERM/SIGINT as `Interrupted`: raised at once, held back by `deferred()`, not raised twice,
and ignored signals stay ignored. TensorFlow-free."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from tfbreak import interrupts
from tfbreak.interrupts import Interrupted


def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_raises_interrupted_with_the_shell_exit_code(sig, code):
    before = signal.getsignal(sig)
    with pytest.raises(Interrupted) as info, interrupts.handled():
        _send(sig)
        pytest.fail("not interrupted")
    assert info.value.signum == sig and info.value.exit_code == code
    assert info.value.signal_name == signal.Signals(sig).name
    assert isinstance(info.value, KeyboardInterrupt)  # code catching Ctrl-C catches it too
    assert signal.getsignal(sig) is before  # restored


def test_deferred_holds_the_signal_until_the_write_is_done():
    done = []
    with pytest.raises(Interrupted), interrupts.handled():
        with interrupts.deferred():
            _send(signal.SIGTERM)
            done.append("row")
            with interrupts.deferred():  # nested: delivered at the outermost end only
                done.append("arrays")
            done.append("after nested")
        done.append("not reached")
    assert done == ["row", "arrays", "after nested"]


def test_after_the_first_interrupt_further_signals_are_ignored_until_the_end():
    with interrupts.handled():
        try:
            _send(signal.SIGINT)
        except Interrupted:
            _send(signal.SIGINT)  # e.g. Ctrl-C pressed again while the stop is recorded
            _send(signal.SIGTERM)
            with interrupts.deferred():
                pass
    with pytest.raises(Interrupted), interrupts.handled():  # a new block is armed again
        _send(signal.SIGTERM)


def test_plain_keyboard_interrupt_counts_as_sigint():
    err = KeyboardInterrupt()
    assert interrupts.as_interrupted(err).signum == signal.SIGINT
    mine = Interrupted(signal.SIGTERM)
    assert interrupts.as_interrupted(mine) is mine


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def worker():
        with interrupts.handled():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]


def test_an_ignored_signal_stays_ignored():
    code = (
        "import os, signal\n"
        "from tfbreak import interrupts\n"
        "with interrupts.handled():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "print('still running')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.returncode == 0 and proc.stdout == "still running\n", proc.stderr
