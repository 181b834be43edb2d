# kf's component server for KFP lightweight Python components.
#
# Imports kfp's executor once, then forks one child per task: every task is
# its own process and runs kfp's executor (`python3 -m kfp.dsl.executor_main`
# with the component's arguments) exactly as the compiled command would, but
# without paying the interpreter start and kfp import for each task.
#
# Protocol: JSON lines. stdin takes requests, a private copy of stdout
# carries replies, and file descriptor 1 is pointed at stderr so nothing a
# library prints can corrupt a reply.
#   -> {"run": id, "source": str, "args": [str], "cwd": str, "env": {str: str},
#       "stdout": path, "stderr": path}
#   <- {"started": id, "pid": int}  or  {"failed": id, "error": str}
#   <- {"exited": id, "code": int}  or  {"exited": id, "signal": int}
#   -> {"kill": id, "signal": int}        signals the child's process group
# At startup: {"ready": true, "kfp": version} or {"ready": false, "error": str}.
# End of stdin: every child's process group is killed and the server exits.
import json
import os
import selectors
import signal
import sys
import traceback

os.environ["_KFP_RUNTIME"] = "true"  # what kfp's program sets: runtime imports only
REPLY = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def reply(message):
    REPLY.write(json.dumps(message) + "\n")


def child(request, wake_fds):
    """In the forked child: become the task's process and run kfp's executor."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for fd in wake_fds:
            os.close(fd)
        REPLY.close()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        module = os.path.join(request["cwd"], "ephemeral_component.py")
        with open(module, "w") as f:
            f.write(request["source"])
        sys.argv = ["executor_main", "--component_module_path", module] + request["args"]
        import runpy

        # The server imported the executor's dependencies; the executor module
        # itself runs fresh as __main__, as `python3 -m` would.
        sys.modules.pop("kfp.dsl.executor_main", None)
        try:
            runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def main():
    try:
        import kfp
        import kfp.dsl.executor_main  # noqa: F401  (the import every task would pay)
    except BaseException as e:
        reply({"ready": False, "error": "%s: %s" % (type(e).__name__, e)})
        return 3
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "requests")
    selector.register(wake_r, selectors.EVENT_READ, "children")
    pids = {}  # id -> pid, for kills
    ids = {}  # pid -> id, for exits
    reply({"ready": True, "kfp": getattr(kfp, "__version__", "unknown")})
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.data == "children":
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                reap(pids, ids)
                continue
            data = os.read(0, 1 << 16)
            if not data:
                for pid in ids:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return 0
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    handle(json.loads(line), pids, ids, (wake_r, wake_w))


def handle(request, pids, ids, wake_fds):
    if "kill" in request:
        pid = pids.get(request["kill"])
        if pid is not None:
            sig = request.get("signal", signal.SIGTERM)
            try:
                os.killpg(pid, sig)
            except OSError:  # not yet its own group leader
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        return
    run = request["run"]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as e:
        reply({"failed": run, "error": "fork: %s" % e})
        return
    if pid == 0:
        child(request, wake_fds)
    pids[run] = pid
    ids[pid] = run
    reply({"started": run, "pid": pid})


def reap(pids, ids):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        run = ids.pop(pid, None)
        if run is None:
            continue
        pids.pop(run, None)
        if os.WIFSIGNALED(status):
            reply({"exited": run, "signal": os.WTERMSIG(status)})
        else:
            reply({"exited": run, "code": os.WEXITSTATUS(status)})


if __name__ == "__main__":
    sys.exit(main())
