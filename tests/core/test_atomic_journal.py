"""Files that appear whole or not at all; result journals that survive torn writes and full disks."""

import errno
import json
import os
import signal

import pytest

from edge_et.core import atomic, journal, resume
from edge_et.core.journal import Journal, WriteFailed, read_journal
from edge_et.core.signals import Interrupted, graceful, interrupting
from edge_et.errors import InputError


def test_atomic_file_keeps_the_old_content_when_the_writer_fails(tmp_path):
    path = atomic.write_text(tmp_path / "report.json", "old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_file(path) as handle:
            handle.write("half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["report.json"]
    atomic.write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and oct(path.stat().st_mode & 0o777) == "0o644"


def test_atomic_directory_publishes_whole_or_not_at_all(tmp_path):
    out = tmp_path / "bundle"
    with atomic.atomic_directory(out) as partial:
        assert partial.name.startswith("bundle.partial-")
        (partial / "bundle.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_directory(out) as partial:
            (partial / "bundle.json").write_text('{"half": true}')
            raise KeyboardInterrupt
    assert (out / "bundle.json").read_text() == "{}" and os.listdir(tmp_path) == ["bundle"]
    with atomic.atomic_directory(out) as partial:
        (partial / "new.txt").write_text("x")
    assert os.listdir(out) == ["new.txt"] and os.listdir(tmp_path) == ["bundle"]


def test_journal_lines_are_whole_and_a_torn_tail_is_cut_before_appending(tmp_path):
    path = tmp_path / "out.jsonl"
    with Journal(path) as out:
        out.append({"index": 0, "text": "é\nnewline inside"})
        out.append({"index": 1})
    with open(path, "ab") as handle:
        handle.write(b'{"index": 2, "tor')  # what a power cut mid-line leaves
    assert [r["index"] for r in read_journal(path)] == [0, 1]
    assert path.read_bytes().endswith(b"tor")  # reading alone changes nothing
    assert [r["index"] for r in read_journal(path, repair=True)] == [0, 1]
    with Journal(path) as out:
        out.append({"index": 2})
    assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [0, 1, 2]


def test_a_lone_surrogate_from_a_user_s_json_escape_is_written_as_its_escape(tmp_path):
    path = tmp_path / "out.jsonl"
    with Journal(path) as out:
        out.append({"question": "what \ud800?", "text": "é"})
    assert read_journal(path) == [{"question": "what \ud800?", "text": "é"}]


def test_a_line_not_written_by_edge_et_is_one_line_error(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"index": 0}\nnot json\n{"index": 2}\n')
    with pytest.raises(InputError, match="line 2 is not a result line"):
        read_journal(path)


def test_a_full_disk_mid_line_keeps_every_line_written_before(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    out = Journal(path)
    out.append({"index": 0})
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal.os, "write", half_then_full)
    with pytest.raises(
        WriteFailed, match="the disk is full; every line written before is kept"
    ) as caught:
        out.append({"index": 1, "text": "x" * 100})
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    out.close()
    assert path.read_text() == '{"index": 0}\n'


def test_resume_refuses_a_changed_input_and_other_settings(tmp_path):
    source, out = tmp_path / "batch.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"image": "a.png", "question": "q"}\n')
    resume.prepare(out, source, {"seed": 1}, resume=True)  # no output yet: a fresh start
    out.write_text('{"index": 0}\n')
    assert resume.prepare(out, source, {"seed": 1}, resume=True).records == [{"index": 0}]
    with pytest.raises(InputError, match="other settings .seed 1 -> 2"):
        resume.prepare(out, source, {"seed": 2}, resume=True)
    source.write_text('{"image": "b.png", "question": "q"}\n')
    with pytest.raises(InputError, match="changed since"):
        resume.prepare(out, source, {"seed": 1}, resume=True)
    assert out.read_text() == '{"index": 0}\n'  # a refused resume touches nothing
    assert resume.prepare(out, source, {"seed": 1}, resume=False).records == []
    assert not out.exists()  # without --resume the run starts afresh


def test_first_signal_sets_the_flag_and_the_interrupting_handler_raises():
    notices = []
    with graceful(notices.append) as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.requested and flag.exit_code == 143 and flag.name == "SIGTERM"
    assert "finishing the line in flight" in notices[0]
    with pytest.raises(Interrupted) as caught:
        with interrupting():
            os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
