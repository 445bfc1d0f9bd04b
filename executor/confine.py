# scripthost run confinement: what a run's process takes on before the
# script's first instruction, in every mode -- its resource limits, then its
# user, and under the sandbox no way back to privileges (lock_down).
#
# The fork server (forkserver.py) loads this as a module and confines each
# run's child with it. Spawn mode runs it as the trampoline of a run that
# changes user or is sandboxed, run as the server:
#   python -I -S -c <this source> <limits> <user> <folder> -- <argv...>
#   python -I -S -c <this source> <limits> <user> <folder> <sandbox source>
#          <sandbox config> <spawn json> -- <argv...>
# It confines itself, enters the folder and executes the run's command
# line. Under the sandbox it first becomes the run's init (sandbox.py's
# spawn_init), and what goes on is the child that executes the command line.
#
# The confinement is Go's (confine_linux.go), in two words that need no
# json (its import would cost a spawned run more than all of this):
# <limits> "resource:soft:hard,..." and <user> "uid:gid:group,group,...",
# either empty for none. Its numbers are final: no limit is higher than the
# server's own hard limit, which every run inherits (limits only restrict).
# Setting the limits before the change of user needs no privilege:
# prlimit(2) on a process of another user needs CAP_SYS_RESOURCE, which
# containers often lack.

import os
import resource
import sys

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_MAXFD = os.sysconf("SC_OPEN_MAX")

# ctypes and the C library, loaded on first use (a spawned run that only
# changes user needs neither), and kept: nothing here imports anything once
# a run's child may be running (an import there would show in the run's
# sys.modules and its path importer cache).
_c = []


def libc():
    """The C library (ctypes), with errno kept."""
    if not _c:
        import ctypes
        lib = ctypes.CDLL(None, use_errno=True)
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        lib.prctl.restype = ctypes.c_int
        _c[:] = [lib, ctypes]
    return _c[0]


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return libc().prctl(option, arg2, arg3, arg4, arg5)


def check(rc, what):
    if rc < 0:
        e = _c[1].get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))
    return rc


def parse(limits, user):
    """The confinement in its two words, as {"rlimits": [(resource, soft,
    hard), ...], "user": {"uid", "gid", "groups"} or None}."""
    c = {"rlimits": [tuple(map(int, lim.split(":"))) for lim in limits.split(",") if lim], "user": None}
    if user:
        uid, gid, groups = user.split(":")
        c["user"] = {"uid": int(uid), "gid": int(gid), "groups": [int(g) for g in groups.split(",") if g]}
    return c


def confine(c):
    """The run's resource limits, then its user (c: parse's)."""
    for res, soft, hard in c["rlimits"]:
        resource.setrlimit(res, (soft, hard))
    if c["user"]:
        become_user(c["user"])


def become_user(user):
    """Takes the user's ids, real, effective and saved, and its groups; fails
    unless it has all of them."""
    uid, gid = user["uid"], user["gid"]
    os.setgroups(user.get("groups") or [])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise OSError("could not switch to uid %d, gid %d" % (uid, gid))


def set_dumpable(on):
    """Dumpable: what ptrace and /proc may see of this process as of its
    user (a change of user clears it; an init of the sandbox keeps it off)."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def die_with_parent(parents, code):
    """This process is killed when its parent ends; if the parent is not
    one of parents (it ended already), it ends now, with code."""
    prctl(PR_SET_PDEATHSIG, 9)  # SIGKILL
    if os.getppid() not in parents:
        os._exit(code)


def close_fds(keep=()):
    """Closes every descriptor from 3 up but those of keep."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _MAXFD)


_bset_empty = False  # this process's bounding set is empty (drop_bounding_set)


def drop_bounding_set():
    """Empties the capability bounding set (what an exec may gain): once, in
    a process that keeps its own capabilities and never execs, whose
    children then lock down without doing it again. True when every
    capability was dropped."""
    global _bset_empty
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 40
    ok = True
    for cap in range(last + 1):
        if prctl(PR_CAPBSET_DROP, cap) != 0:
            ok = False
    _bset_empty = ok
    return ok


def lock_down():
    """After the run's limits and user are set (the sandbox): no exec may
    gain privileges (setuid programs, file capabilities), and a run that
    stays root keeps no capability (it cannot undo its mounts or leave its
    namespaces)."""
    check(prctl(PR_SET_NO_NEW_PRIVS, 1), "prctl(NO_NEW_PRIVS)")
    if os.geteuid() != 0:
        return
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if not _bset_empty:
        drop_bounding_set()
    # capset: version 3, this process, nothing effective, permitted or
    # inheritable.
    ctypes = _c[1]
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc().capset(header, data), "capset")


def fail(e):
    """A run whose process cannot become the run's: says why on its stderr,
    and ends with 127, as a shell does for a command it cannot run."""
    try:
        os.write(2, ("scripthost: cannot start the run: %s\n" % (e,)).encode("utf-8", "replace"))
    finally:
        os._exit(127)


def load(name, source, **names):
    """Runs source as the module _scripthost_<name>, left out of
    sys.modules, with names in its globals."""
    mod = type(sys)("_scripthost_" + name)
    mod.__dict__.update(names)
    exec(compile(source, "<scripthost %s>" % name, "exec"), mod.__dict__)
    return mod


def _environ():
    # The environment as the kernel has it: os.environ, under -I, is not.
    try:
        with open("/proc/self/environ", "rb") as f:
            return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    except OSError:
        return dict(os.environb)


def _spawn_main():
    end = sys.argv.index("--", 4)
    c = parse(sys.argv[1], sys.argv[2])
    folder = sys.argv[3]
    sandbox = sys.argv[4:end]
    argv = [os.fsencode(a) for a in sys.argv[end + 1:]]
    env = _environ()
    if sandbox:
        source, config, spawn = sandbox
        sb = load("sandbox", source, confine=sys.modules[__name__])
        sb.spawn_init(config, spawn, folder)  # returns in the run's own process
    confine(c)
    if sandbox:
        lock_down()
    os.chdir(folder)
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    try:
        _spawn_main()
    except BaseException as e:
        fail(e)
