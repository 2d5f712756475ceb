#!/usr/bin/env python3
"""tests/test_repl.py — drives the skd-lua REPL through a pseudo-terminal, as a user would:
results printed, errors survived, continuation lines, history across sessions, tab completion,
Ctrl-C on a running loop and at the prompt, Ctrl-D. Python 3 standard library only.

The binary is $SKD_BIN (set by tests/run.sh), else ./build/skd-lua. Closing line:
"N passed, M failed".
"""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import tempfile
import termios
import time
import traceback

BIN = os.environ.get("SKD_BIN", "./build/skd-lua")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")
TIMEOUT = 20.0  # generous: the suite shares 2 cores with other jobs (and ASan is slow)


class Session:
    """One skd-lua process on a pty. expect() consumes output in order, so each check only
    sees what came after the previous one."""

    def __init__(self, env_extra=None, args=()):
        env = dict(os.environ)
        env.update({"TERM": "dumb", "INPUTRC": "/dev/null"})
        env.update(env_extra or {})
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(BIN, [BIN, *args], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.raw = b""
        self.pos = 0
        self.status = None

    def send(self, s):
        os.write(self.fd, s.encode())

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child has gone
            return None
        if not data:
            return None
        self.raw += data
        return True

    def text(self):
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace")

    def expect(self, pattern, timeout=TIMEOUT):
        """Waits for the regex after the last match; returns the match or raises."""
        rx = re.compile(pattern)
        end = time.time() + timeout
        while True:
            m = rx.search(self.text(), self.pos)
            if m:
                self.pos = m.end()
                return m
            left = end - time.time()
            if left <= 0 or self._read(min(left, 0.2)) is None and not rx.search(self.text(), self.pos):
                if left <= 0 or self.exited():
                    tail = self.text()[self.pos:][-600:]
                    raise AssertionError("did not see %r; output after the last match:\n%s" % (pattern, tail))

    def prompt(self):
        return self.expect(r"\n> $")

    def run(self, line, pattern):
        """Types a line, waits for pattern, then for the next prompt."""
        self.send(line + "\r")
        m = self.expect(pattern)
        self.prompt()
        return m

    def exited(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = st
        return self.status is not None

    def wait(self, timeout=TIMEOUT):
        end = time.time() + timeout
        while not self.exited():
            if time.time() > end:
                raise AssertionError("skd-lua did not exit")
            self._read(0.1)
        while self._read(0.05):
            pass
        return os.waitstatus_to_exitcode(self.status)

    def kill(self):
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = 0
        os.close(self.fd)


passed = failed = 0


def test(name, fn):
    global passed, failed
    t0 = time.time()
    try:
        fn()
        passed += 1
        print("ok    %-60s %.2fs" % (name, time.time() - t0))
    except Exception:
        failed += 1
        print("FAIL  " + name + "\n      " + traceback.format_exc().replace("\n", "\n      "))
    sys.stdout.flush()


tmp = tempfile.mkdtemp(prefix="skd-repl-")
HIST = os.path.join(tmp, "history")


def session(**kw):
    env = {"SKD_HISTORY": HIST}
    env.update(kw.pop("env", {}))
    s = Session(env, **kw)
    s.expect(r"skd \d+\.\d+\.\d+ \(Lua 5\.4")
    s.prompt()
    return s


def t_expressions():
    s = session()
    try:
        s.run("1+1", r"(?m)^2$")
        s.run("1, 'a', nil, 2.5", r"(?m)^1\ta\tnil\t2\.5$")
        s.run("x = skd.ones(2,3)", r"")
        m = s.run("x", r"(?s) 1  1  1\n 1  1  1\n\[skd\.FloatTensor of size 2x3\]")
        assert m
        s.run("=2*21", r"(?m)^42$")
        s.run("skd.tensor(2.5)", r"2\.5000\n\[skd\.FloatTensor scalar\]")
    finally:
        s.kill()


def t_errors_survive():
    s = session()
    try:
        s.run("error('oops')", r"oops\nstack traceback:")
        s.run("skd.ones(2,3) + skd.ones(4,5)", r"(?i)(shape|broadcast|size)")
        s.run("local = 1", r"unexpected symbol|expected")
        s.run("3*3", r"(?m)^9$")
    finally:
        s.kill()


def t_continuation():
    s = session()
    try:
        s.send("for i = 1, 3 do\r")
        s.expect(r">> $")
        s.send("print(i * 10)\r")
        s.expect(r">> $")
        s.send("end\r")
        s.expect(r"(?m)^10\n20\n30$")
        s.prompt()
        s.send("function f(a)\r")
        s.expect(r">> $")
        s.send("return a + 1 end\r")
        s.prompt()
        s.run("f(41)", r"(?m)^42$")
    finally:
        s.kill()


def t_completion():
    s = session()
    try:
        s.send("skd.ze\t")  # zero_ and zeros: lists both, completes the common part
        s.expect(r"skd\.zero_\s+(\S+\s+)*skd\.zeros\b")
        s.expect(r"skd\.zero$")
        s.send("s(2)\r")  # runs only if the Tab really inserted "ro"
        s.expect(r"\[skd\.FloatTensor of size 2\]")
        s.prompt()
        s.run("x = skd.ones(2,3)", r"")
        s.send("x:resh\t")  # unique: completes in place
        s.expect(r"x:reshape")
        s.send("(3,2)\r")
        s.expect(r"\[skd\.FloatTensor of size 3x2\]")
        s.prompt()
        s.send("x:su\t")  # ambiguous (sub, sum): lists both
        s.expect(r"x:sub\s+(\S+\s+)*x:sum\b")
        s.send("m()\r")
        s.expect(r"(?m)^ ?6(\.0+)?$")
        s.prompt()
        s.run("m = skd.nn.Conv2d(3, 4, 3)", r"")
        s.send("m:num_p\t")  # a method of a Lua object, through its metatable's __index chain
        s.expect(r"m:num_parameters")
        s.send("()\r")
        s.expect(r"(?m)^112$")  # 4*3*3*3 weights + 4 biases
        s.prompt()
        s.send("pri\t")  # a global
        s.expect(r"print")
        s.send("('g-ok')\r")
        s.expect(r"(?m)^g-ok$")
        s.prompt()
        # a lazily loaded submodule completes once loaded, without loading it by completing
        s.run("_ = skd.optim", r"")
        s.send("skd.optim.sg\t")
        s.expect(r"skd\.optim\.sgd")
        s.send("\x15")  # Ctrl-U: drop the line
        s.send("\r")
        s.prompt()
    finally:
        s.kill()


def t_interrupt_loop():
    s = session()
    try:
        # start the worker threads first: Ctrl-C must still reach the interpreter
        s.run("y = skd.matmul(skd.randn(256, 256), skd.randn(256, 256)) + 1", r"")
        s.send("while true do end\r")
        time.sleep(0.5)
        s.send("\x03")
        s.expect(r"interrupted!")
        s.prompt()
        s.run("2+3", r"(?m)^5$")
        # and a second time: the handler is re-armed for each chunk
        s.send("local n = 0 while true do n = n + 1 end\r")
        time.sleep(0.5)
        s.send("\x03")
        s.expect(r"interrupted!")
        s.prompt()
        s.run("'alive'", r"(?m)^alive$")
    finally:
        s.kill()


def t_interrupt_prompt():
    s = session()
    try:
        s.send("1+")
        time.sleep(0.2)
        s.send("\x03")  # clears the line: the next line is not 1+2+2
        s.prompt()
        s.run("2+2", r"(?m)^4$")
        s.send("for i = 1, 2 do\r")
        s.expect(r">> $")
        s.send("\x03")  # abandons the whole unfinished chunk
        s.prompt()
        s.run("5+5", r"(?m)^10$")
    finally:
        s.kill()


def t_history_and_eof():
    if os.path.exists(HIST):
        os.remove(HIST)
    s = session()
    try:
        s.run("print('from-history-' .. 6*7)", r"(?m)^from-history-42$")
        s.send("\x04")  # Ctrl-D at an empty prompt
        code = s.wait()
        assert code == 0, "exit status %d after Ctrl-D" % code
    finally:
        s.kill()
    with open(HIST) as f:
        saved = f.read()
    assert "print('from-history-' .. 6*7)" in saved, "history file holds: %r" % saved
    s = session()
    try:
        s.send("\x1b[A")  # arrow up recalls the previous session's line
        s.expect(r"print\('from-history-' \.\. 6\*7\)")
        s.send("\r")
        s.expect(r"(?m)^from-history-42$")
        s.prompt()
        s.send("\x04")
        assert s.wait() == 0
    finally:
        s.kill()


def t_history_unwritable():
    s = session(env={"SKD_HISTORY": "/nonexistent-dir/sub/history"})
    try:
        s.run("1+1", r"(?m)^2$")
        s.send("\x04")
        assert s.wait() == 0
    finally:
        s.kill()


def t_script_then_repl():
    script = os.path.join(tmp, "pre.lua")
    with open(script, "w") as f:
        f.write("preloaded = 7 * 6\n")
    s = Session({"SKD_HISTORY": HIST}, args=("-i", script))
    try:
        s.prompt()
        s.run("preloaded", r"(?m)^42$")
        s.send("\x04")
        assert s.wait() == 0
    finally:
        s.kill()


if not os.access(BIN, os.X_OK):
    print("cannot run %s (build first: make)" % BIN)
    print("0 passed, 1 failed")
    sys.exit(1)

test("expressions print their values (tensors pretty-printed)", t_expressions)
test("errors show a traceback and the session goes on", t_errors_survive)
test("unfinished chunks continue on a >> prompt", t_continuation)
test("tab completion: skd names, methods after ':', globals, submodules", t_completion)
test("Ctrl-C interrupts a running loop and the prompt returns", t_interrupt_loop)
test("Ctrl-C at the prompt clears the line or the unfinished chunk", t_interrupt_prompt)
test("history persists across sessions; Ctrl-D exits with status 0", t_history_and_eof)
test("an unwritable history file is skipped silently", t_history_unwritable)
test("-i runs the script, then the REPL", t_script_then_repl)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
