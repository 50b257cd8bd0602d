"""Progress on stderr: a tqdm bar with rate and ETA on a terminal (and a bar over the parts of
a measurement), plain lines with the same rate and ETA otherwise."""

import io
import re

from tfbreak.training.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_carry_rate_and_eta_and_each_measurement():
    out = io.StringIO()
    p = Progress(100, "run", every=0.0, stream=out)
    p.step(10, 2.3456, 0.125)
    p.note("measured step 10 (0.5s): K/lambda_1=3")
    p.step(100, 0.5, 0.9, force=True)
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[run] step 10/100") and "loss 2.3456 acc 0.125" in lines[0]
    assert re.search(r"\d+:\d\d<\d+:\d\d, .*step/s", lines[0]), lines[0]  # elapsed<ETA, rate
    assert lines[1] == "[run] measured step 10 (0.5s): K/lambda_1=3"
    assert lines[2].startswith("[run] step 100/100") and "100%" in lines[2]
    assert "\r" not in out.getvalue()


def test_quiet_between_log_lines():
    out = io.StringIO()
    p = Progress(100, "run", every=3600.0, stream=out)
    for step in range(1, 50):
        p.step(step, 1.0, 0.5)
    assert out.getvalue() == ""


def test_terminal_bar_with_rate_eta_and_measurement_parts():
    out = Terminal()
    p = Progress(200, "run", initial=50, stream=out)
    p.step(60, 1.5, 0.25)
    with p.measuring(60, ["hessian", "K"]) as part:
        part("hessian")
        part("K")
    p.note("measured step 60")
    p.step(200, 1.0, 0.5, force=True)
    p.close()
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    assert "200/200" in text and "step/s" in text and "loss 1.0000 acc 0.500" in text
    assert "measuring step 60" in text and "hessian" in text
    assert "[run] measured step 60\n" in text
