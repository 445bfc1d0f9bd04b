# scripthost run sandbox: what isolates one run, in both execution modes.
#
# It is loaded as a module, with confine.py as its global `confine`: by the
# warm interpreter in fork mode (forkserver.py); in spawn mode by a run's
# trampoline (confine.py), which Go starts as pid 1 of a new pid namespace
# and which makes itself the run's init here (spawn_init).
#
# Two parts make a run's view:
#   - a slot (prepare_slot), made by the init (pid 1) of a pid namespace:
#     a mount namespace where every mount is read-only (mount_setattr,
#     recursive, propagation private) and /proc is this pid namespace's
#     (hidepid: not even the init shows); a network namespace with only a
#     loopback interface, up (unless the host network is asked for);
#   - the run's own: a fresh tmpfs on /tmp and /dev/shm (1777; HOME a 0700
#     folder of that /tmp), the run's folder put back in place (read-only)
#     when they cover it, and an IPC namespace (in fork mode, the slot's,
#     for runs as another user than root, checked empty after each run).
# Fork mode keeps a slot per run in progress (slot_main is its init's life),
# whose /tmp, /dev/shm and HOME are made fresh for each run: between two
# runs the init kills whatever the last one left and, unless the run left
# them as they were (_SlotView), mounts them afresh, with the folder of the
# slot's last run put back in place (a copy of it the warm interpreter
# hands over). The warm interpreter forks a run's child straight into a
# free slot's pid namespace (fork_into); the child joins the slot's cgroups,
# enters its mount, network and IPC namespaces (in one setns through a pidfd
# of the slot's init, which the warm interpreter keeps with the slot's
# cgroup files, slot_fds; a run as root makes an IPC namespace of its own),
# and once its job comes only puts its folder in
# place in a mount namespace of its own if the slot does not have it
# (enter_run). Spawn mode makes both
# parts in its init (private_view), forks, and the child execs the run's
# command line; the init reports the run's wait status and exits, which ends
# whatever is left in the namespace. Both then set the run's limits and
# user, and lock down (confine.py).
#
# Config (json): {"host_network": bool, "home": path, "tmpfs_size": bytes,
# "uid", "gid": the run user's (0 for root), "cgroup_limits": [[parent,
# [[file, value], ...]], ...] (fork mode: the slots' cgroups)}.

import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import sys

CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
# The new mount API has the same numbers on every architecture.
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432
FSCONFIG_CMD_CREATE = 6
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFF_RUNNING = 0x40

# A group no user is in (the largest valid id): see prepare_slot.
_HIDEPID_GID = 0xFFFFFFFE

confine = globals()["confine"]  # given by the loader: confine.py
_libc = confine.libc()
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
_check = confine.check
# setns without argtypes, for a warm process between its forks and for a
# run's child: its two ints go as they are, with no conversion objects made
# (right after a fork, each page either process writes is copied).
_setns = _libc["setns"]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _mount(source, target, fstype, flags, data):
    _check(_libc.mount(source, target.encode() if isinstance(target, str) else target,
                       fstype, flags, data), "mount %s on %s" % (fstype.decode(), target))


def _read_only(dirfd, path, flags, propagation=0):
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, propagation, 0)
    _check(_libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(dirfd), ctypes.c_char_p(path),
                         ctypes.c_uint(flags), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           "mount_setattr")


def _under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


# ------------------------------------------------------------ namespaces

_OWN_PIDNS = [None]
_OWN_IPC = [None]
_HOST_MNT = [None]


def _own_pidns():
    if _OWN_PIDNS[0] is None:
        _OWN_PIDNS[0] = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    return _OWN_PIDNS[0]


def _own_ipc():
    if _OWN_IPC[0] is None:
        _OWN_IPC[0] = os.open("/proc/self/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
    return _OWN_IPC[0]


def _host_mnt():
    if _HOST_MNT[0] is None:
        _HOST_MNT[0] = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    return _HOST_MNT[0]


def forget_fds():
    """In a fork of the warm interpreter that serves runs of its own (a
    warm parent): the descriptors opened here were its parent's."""
    _OWN_PIDNS[0] = _OWN_IPC[0] = _HOST_MNT[0] = None


def fork_init():
    """Forks a child that is pid 1 of a new pid namespace (its init); the
    caller's later children go on being created in its own namespace. Only
    the calling thread's namespace for children changes, and only here."""
    own = _own_pidns()
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    try:
        pid = os.fork()
    except BaseException:
        _libc.setns(own, CLONE_NEWPID)
        raise
    if pid:
        _check(_libc.setns(own, CLONE_NEWPID), "setns(pid)")
    return pid


def fork_into(pidns):
    """Forks a child into the pid namespace pidns (a descriptor of it, or
    a pidfd of a process in it)."""
    own = _own_pidns()
    _check(_setns(pidns, CLONE_NEWPID), "setns(pid)")
    try:
        pid = os.fork()
    except BaseException:
        _setns(own, CLONE_NEWPID)
        raise
    if pid:
        _check(_setns(own, CLONE_NEWPID), "setns(pid)")
    return pid


def prepare_slot(cfg, tmp=True):
    """In a pid namespace's init, as root: the part of a run's view that
    runs can share one after the other (fork mode keeps such a slot per
    concurrent run; spawn mode makes one per run): a mount namespace where
    everything is read-only and /proc is this pid namespace's, and a network
    namespace with its loopback interface up (unless the host network is
    asked for)."""
    flags = CLONE_NEWNS
    if not cfg.get("host_network"):
        flags |= CLONE_NEWNET
    _check(_libc.unshare(flags), "unshare")
    _read_only(AT_FDCWD, b"/", AT_RECURSIVE, MS_PRIVATE)
    # This namespace's processes only; and of those, only the ones a run
    # may trace (not the init, which is not dumpable). The group that would
    # see them all anyway (by default root's) is one no run is in.
    hide = b",gid=%d" % _HIDEPID_GID
    try:
        _mount(b"proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"hidepid=invisible" + hide)
    except OSError:
        _mount(b"proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"hidepid=2" + hide)
    if flags & CLONE_NEWNET:
        _loopback_up()
    if tmp:
        _fresh_tmp(cfg)


def _tmpfs_opts(cfg):
    size = int(cfg.get("tmpfs_size") or 0)
    return b"mode=1777" + (b",size=%d" % size if size else b"")


def _fresh_tmp(cfg):
    """A fresh, empty /tmp and /dev/shm (and HOME in that /tmp, or a tmpfs
    of its own elsewhere)."""
    opts = _tmpfs_opts(cfg)
    _mount(b"tmpfs", "/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, opts)
    if os.path.isdir("/dev/shm"):
        _mount(b"tmpfs", "/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, opts)
    home = cfg.get("home") or ""
    if home:
        if not _under(home, "/tmp"):
            _mount(b"tmpfs", home, b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0700" + opts[9:])
        else:
            os.mkdir(home, 0o700)
        os.chown(home, cfg.get("uid", 0), cfg.get("gid", 0))


def covers(cfg, folder):
    """Whether a run's own /tmp, /dev/shm or HOME covers folder: it is then
    put back in place on top of them."""
    home = cfg.get("home") or ""
    return any(_under(folder, c) for c in ["/tmp", "/dev/shm", home] if c)


def _own_mounts(cfg):
    """The mounts of a slot that are its runs' own."""
    home = cfg.get("home") or ""
    out = ["/tmp"]
    if os.path.isdir("/dev/shm"):
        out.append("/dev/shm")
    if home and not _under(home, "/tmp"):
        out.append(home)
    return out


def view_dirs(cfg, folder):
    """The folders of a slot's view that its runs may change (the only
    ones there when it is fresh): its /tmp, /dev/shm and HOME, and those
    leading to folder, put back in place there."""
    home = cfg.get("home") or ""
    dirs = _own_mounts(cfg)
    if home and _under(home, "/tmp"):
        dirs.append(home)
    top = max((m for m in dirs if folder and _under(folder, m)), key=len, default=None)
    if top is not None:
        d = os.path.dirname(folder)
        while _under(d, top) and d != top:
            dirs.append(d)
            d = os.path.dirname(d)
    return dirs


def _clone_tree(path):
    return _check(_libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD),
                                ctypes.c_char_p(os.fsencode(path)),
                                ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | AT_RECURSIVE)),
                  "open_tree %s" % path)


def clone_folder(folder):
    """A detached copy of folder as this process sees it, for a slot's
    init to put in place: (descriptor, (device, inode))."""
    tree = _clone_tree(folder)
    try:
        st = os.fstat(tree)
    except BaseException:
        os.close(tree)
        raise
    return tree, (st.st_dev, st.st_ino)


def _put_in_place(tree, folder):
    _read_only(tree, b"", AT_EMPTY_PATH | AT_RECURSIVE)
    os.makedirs(folder, 0o755, exist_ok=True)
    _check(_libc.syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), ctypes.c_char_p(b""),
                         ctypes.c_int(AT_FDCWD), ctypes.c_char_p(os.fsencode(folder)),
                         ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount %s" % folder)


class _SlotView:
    """In a slot's init: the part of the slot's view that its runs may
    change (view_dirs) as it was made fresh. Only the folders the init made
    are there, so their entries, owners, modes, extended attributes and
    times (and the tmpfs's free blocks and inodes) are all of it: a run
    that left them as they were leaves nothing for the next one to find,
    and the slot keeps its mounts."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.mounts = _own_mounts(cfg)
        self.folder = None  # the folder put back in place, if any
        self.fresh = None

    def _state(self):
        out = []
        for d in view_dirs(self.cfg, self.folder):
            st = os.lstat(d)
            out.append((d, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_ino,
                        st.st_mtime_ns, st.st_ctime_ns, sorted(os.listdir(d)),
                        sorted(os.listxattr(d, follow_symlinks=False))))
        for m in self.mounts:
            v = os.statvfs(m)
            out.append((m, v.f_bfree, v.f_ffree))
        return out

    def changed(self):
        try:
            return self._state() != self.fresh
        except OSError:
            return True

    def refresh(self, tree=-1, folder=None):
        """Drops the slot's /tmp, /dev/shm and HOME (with all they hold)
        for fresh ones, and puts back in place the folder of tree (a
        detached copy), or else the one in place now."""
        keep = -1
        if tree < 0 and self.folder:
            keep, folder = _clone_tree(self.folder), self.folder
        try:
            for path in self.mounts:
                _check(_libc.umount2(os.fsencode(path), 2), "umount " + path)  # MNT_DETACH
            self.folder = None
            _fresh_tmp(self.cfg)
            if tree >= 0 or keep >= 0:
                _put_in_place(tree if tree >= 0 else keep, folder)
                self.folder = folder
        finally:
            if keep >= 0:
                os.close(keep)
        self.fresh = self._state()


IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_ONLYDIR, IN_DONT_FOLLOW = 0x400, 0x800, 0x01000000, 0x02000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_WATCH_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
               | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)


class Watcher:
    """In the warm interpreter: one inotify instance that watches the
    slots' view_dirs (through their inits' /proc/<pid>/root), from when
    each is made fresh. Any change to them -- an entry made, removed or
    renamed, a mode, owner, time or extended attribute set, a file
    written -- is an event, and reading what they see is none: once no
    process of a run is left, a slot with no event is as fresh as its init
    made it. Slots it cannot watch (no inotify, no room for watches) are
    checked by their init instead."""

    def __init__(self):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        self.of = {}  # watch -> its key
        self.wds = {}  # key -> its watches

    def watch(self, key, init_pid, dirs):
        """Watches dirs of the slot whose init is init_pid, as key's (in
        place of those it had); False if it cannot."""
        self.unwatch(key)
        if self.fd < 0:
            return False
        wds = []
        for d in dirs:
            wd = _libc.inotify_add_watch(self.fd, os.fsencode("/proc/%d/root%s" % (init_pid, d)), _WATCH_MASK)
            if wd < 0:
                for w in wds:
                    _libc.inotify_rm_watch(self.fd, w)
                return False
            wds.append(wd)
        self.wds[key] = wds
        for wd in wds:
            self.of[wd] = key
        return True

    def unwatch(self, key):
        for wd in self.wds.pop(key, ()):
            del self.of[wd]
            _libc.inotify_rm_watch(self.fd, wd)  # (gone already with their tmpfs)

    def changed(self):
        """The keys that had events since the last call, and whether some
        events were lost (the queue overflowed: any key may have had one)."""
        keys, lost = set(), False
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return keys, lost
            except OSError:
                return keys, True
            i = 0
            while i + 16 <= len(buf):
                wd, _, _, n = struct.unpack_from("iIII", buf, i)
                i += 16 + n
                if wd < 0:
                    lost = True
                elif wd in self.of:
                    keys.add(self.of[wd])


# Descriptors of the host's view that a run's child keeps from before it
# enters its slot until its job has come (then closed): the host's mount
# namespace and the slot's, to put the run's folder back in place.
_HOST_FDS = {}


def kept_fds():
    return list(_HOST_FDS.values())


def make_slot_cgroups(cfg, init_pid):
    """In the warm interpreter, for a new slot: the slot's cgroups (one per
    hierarchy), with the run limits; its runs' processes join them."""
    made = []
    try:
        for parent, settings in cfg.get("cgroup_limits") or ():
            _remove_dead_slot_cgroups(parent)
            d = _new_slot_cgroup(parent, init_pid)
            made.append(d)
            for name, value in settings:
                try:
                    with open(os.path.join(d, name), "w") as f:
                        f.write(value)
                except FileNotFoundError:
                    if "sw" not in name:
                        raise  # memsw, swap: not accounted here
    except BaseException:
        remove_cgroups(made)
        raise
    return made


# The parents whose groups of dead slots this process has removed.
_SWEPT = set()


def _remove_dead_slot_cgroups(parent):
    """Once per process and parent: removes the empty groups of slots whose
    init is gone, left by a warm process that died before removing them (Go
    removes the parent's groups only when the runner closes). A slot's group
    is named after its init while that lives (slot-<pid>, or slot-<pid>-<n>,
    see _new_slot_cgroup), so none of these is a live slot's; the kernel
    refuses to remove one that still has processes."""
    if parent in _SWEPT:
        return
    _SWEPT.add(parent)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name[len("slot-"):].split("-")[0]
        if not name.startswith("slot-") or not pid.isdigit():
            continue
        if _alive(int(pid)):
            continue
        try:
            os.rmdir(os.path.join(parent, name))
        except OSError:
            pass


def _alive(pid):
    """Whether pid is a process that has not ended: a zombie has (the
    init of a slot whose warm process was killed becomes one, re-parented
    to the server, the reaper of orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # not ours to signal: it is there
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _new_slot_cgroup(parent, init_pid):
    """Makes parent's group for the slot whose init is init_pid:
    slot-<init_pid>. One of that name can be there already, left by a warm
    process that died without removing its slots' groups, its init's pid
    since given to this one (pids wrap; a server in a pid namespace of its
    own gets the same pids at each start): an empty one is made anew (rmdir
    fails while processes are in it), one still with processes is left
    alone and this slot's is slot-<init_pid>-<n>."""
    d = os.path.join(parent, "slot-%d" % init_pid)
    try:
        os.mkdir(d, 0o755)
        return d
    except FileExistsError:
        pass
    try:
        os.rmdir(d)
        os.mkdir(d, 0o755)
        return d
    except OSError:
        pass
    for n in range(1, 100):
        try:
            os.mkdir("%s-%d" % (d, n), 0o755)
            return "%s-%d" % (d, n)
        except FileExistsError:
            pass
    raise FileExistsError("cgroup %s and 99 others of its name are taken" % d)


def remove_cgroups(dirs):
    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass


def slot_fds(pidfd, cgroups, cfg):
    """In the warm interpreter, for a new slot whose init is ready: what its
    runs' children enter it through (enter_slot_ahead) -- a pidfd of its
    init (pidfd, the caller's: its pid namespace, its mount and network
    namespaces and, see ipc_probes, its IPC namespace are entered through
    it, "ns" the flags of those entered ahead of the job), its cgroups'
    cgroup.procs -- and "pids", the slot's pids.current (-1 without a pids
    cgroup), through which the warm interpreter sees a run's processes all
    gone (run_gone). Every descriptor this process holds is one more that
    each run's child inherits and closes: a slot holds only these."""
    fds = {"pidfd": pidfd, "ns": CLONE_NEWNS, "probes": [], "procs": [], "pids": -1, "keep": ()}
    if not cfg.get("host_network"):
        fds["ns"] |= CLONE_NEWNET
    try:
        for d in cgroups:
            fds["procs"].append(os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
            if fds["pids"] < 0 and os.path.exists(os.path.join(d, "pids.current")):
                fds["pids"] = os.open(os.path.join(d, "pids.current"), os.O_RDONLY | os.O_CLOEXEC)
        if cfg.get("uid", 0) != 0:
            try:
                fds["probes"] = ipc_probes(pidfd)
            except OSError:
                pass  # each run makes an IPC namespace of its own
            else:
                fds["ns"] |= CLONE_NEWIPC
        # What a run's child keeps until it has entered the slot.
        fds["keep"] = tuple(sorted([pidfd, _host_mnt()] + fds["procs"]))
    except BaseException:
        close_slot_fds(fds)
        raise
    return fds


def ipc_probes(ipc):
    """What shows, in the warm interpreter, whether a slot's IPC namespace
    (ipc, a descriptor of it or a pidfd of a process in it) holds anything (ipc_empty): its System V
    shared memory, message queues and semaphore sets (/proc/sysvipc, which
    lists those of the namespace it was opened in) and its POSIX message
    queues (the root of its mqueue file system, whose size grows with each
    queue), with that size as it is now. The slot's runs share the
    namespace one after the other, instead of each making one (making one
    and, at the run's end, freeing it cost more than all else of entering
    a slot): a run as another user than root can change nothing else of it
    (its sysctls are root's), and a slot whose run left anything there is
    not used again."""
    own = _own_ipc()
    probes = []
    _check(_libc.setns(ipc, CLONE_NEWIPC), "setns(ipc)")
    try:
        for name in ("shm", "msg", "sem"):
            probes.append(os.open("/proc/sysvipc/" + name, os.O_RDONLY | os.O_CLOEXEC))
        fs = _check(_libc.syscall(ctypes.c_long(SYS_FSOPEN), ctypes.c_char_p(b"mqueue"),
                                  ctypes.c_uint(FSOPEN_CLOEXEC)), "fsopen mqueue")
        try:
            _check(_libc.syscall(ctypes.c_long(SYS_FSCONFIG), ctypes.c_int(fs), ctypes.c_uint(FSCONFIG_CMD_CREATE),
                                 None, None, ctypes.c_int(0)), "fsconfig mqueue")
            probes.append(_check(_libc.syscall(ctypes.c_long(SYS_FSMOUNT), ctypes.c_int(fs),
                                               ctypes.c_uint(FSMOUNT_CLOEXEC), ctypes.c_uint(0)), "fsmount mqueue"))
        finally:
            os.close(fs)
        probes.append(os.fstat(probes[3]).st_size)
    except BaseException:
        for fd in probes[:4]:
            os.close(fd)
        raise
    finally:
        _check(_libc.setns(own, CLONE_NEWIPC), "setns(own ipc)")
    return probes


def ipc_empty(fds):
    """In the warm interpreter: whether the slot's IPC namespace holds
    nothing (see ipc_probes); True when each run has its own."""
    probes = fds["probes"]
    if not probes:
        return True
    try:
        for fd in probes[:3]:
            if os.pread(fd, 4096, 0).count(b"\n") > 1:  # more than the header
                return False
        return os.fstat(probes[3]).st_size == probes[4]
    except OSError:
        return False


def close_slot_fds(fds):
    for fd in [fds["pids"]] + fds["procs"] + fds["probes"][:4]:
        if fd >= 0:
            os.close(fd)
    fds["probes"] = []


def child_fds(fds):
    """The descriptors a run's child keeps until it has entered its slot."""
    return fds["keep"]


def run_gone(fds):
    """In the warm interpreter, once a run's own process is reaped: whether
    no process of the run is left (its slot's pids cgroup is empty; every
    process of a run is in it, and none can leave). False when there is
    no telling."""
    if fds["pids"] < 0:
        return False
    try:
        return os.pread(fds["pids"], 32, 0).strip() == b"0"
    except OSError:
        return False


def enter_slot_ahead(fds, cfg):
    """In a run's child forked into a slot's pid namespace, before its job:
    joins the slot's cgroups, enters the slot's mount and network
    namespaces, and its IPC namespace where it has one for its runs (else
    makes one of its own), in one setns through its init's pidfd (see
    slot_fds), and keeps what it needs of the host's view."""
    for fd in fds["procs"]:
        os.write(fd, b"0")
    ns = fds["ns"]
    _HOST_FDS["mnt"] = _HOST_MNT[0]
    _HOST_FDS["slot"] = fds["pidfd"]
    _check(_setns(fds["pidfd"], ns), "setns")
    if not ns & CLONE_NEWIPC:
        _check(_libc.unshare(CLONE_NEWIPC), "unshare(CLONE_NEWIPC)")


def enter_run(cfg, folder, placed, slot_folder):
    """In a run's child, once its job came: if the slot's /tmp, /dev/shm or
    HOME covers the run's folder and the slot does not have it in place
    (placed), puts it back in place in a mount namespace of its own,
    without the slot's folder (slot_folder) if it has another; closes what
    it kept of the host's view."""
    try:
        if not placed and covers(cfg, folder):
            # A copy of the folder from the host's view (made there).
            _check(_libc.setns(_HOST_FDS["mnt"], CLONE_NEWNS), "setns(host mnt)")
            tree = _clone_tree(folder)
            try:
                _check(_libc.setns(_HOST_FDS["slot"], CLONE_NEWNS), "setns(slot mnt)")
                _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
                if slot_folder:
                    _libc.umount2(os.fsencode(slot_folder), 2)  # MNT_DETACH
                _put_in_place(tree, folder)
            finally:
                os.close(tree)
    finally:
        for fd in _HOST_FDS.values():
            os.close(fd)
        _HOST_FDS.clear()


def private_view(cfg, folder):
    """What is the run's alone, on top of its slot: a copy of the mount
    namespace with a fresh /tmp, /dev/shm and HOME, the run's folder put
    back in place if they cover it, and an IPC namespace. All of it goes
    with the run's last process."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    _fresh_own(cfg, folder)


def _fresh_own(cfg, folder):
    """In a mount namespace of the caller's own: a fresh /tmp, /dev/shm and
    HOME, with folder put back in place if they cover it."""
    # A detached copy of the folder, made before anything covers it.
    tree = _clone_tree(folder) if folder and covers(cfg, folder) else -1
    try:
        _fresh_tmp(cfg)
        if tree >= 0:
            _put_in_place(tree, folder)
    finally:
        if tree >= 0:
            os.close(tree)


def import_view(cfg, folder=None):
    """In a warm process about to import what it hands over to runs (the
    warm interpreter's preloads, a warm parent's script imports): a view of
    the host as its runs have it, so that the imports find, read and write
    what a run's would (everything read-only; a fresh /tmp, /dev/shm and
    HOME, with folder put back in place if they cover it; only a loopback
    unless the host network is asked for). Returns what takes the calling
    thread back to the host's view (and its root and working folder),
    which it then needs for its runs' slots."""
    keep = []
    try:
        for path, flags in (("/proc/self/ns/mnt", os.O_RDONLY), ("/proc/self/ns/net", os.O_RDONLY),
                            ("/", os.O_PATH | os.O_DIRECTORY), (".", os.O_PATH | os.O_DIRECTORY)):
            keep.append(os.open(path, flags | os.O_CLOEXEC))
    except BaseException:
        for fd in keep:
            os.close(fd)
        raise
    mnt, net, root, cwd = keep
    flags = CLONE_NEWNS
    if not cfg.get("host_network"):
        flags |= CLONE_NEWNET

    def leave():
        try:
            # A thread an import started shares this one's root and working
            # folder, which a change of mount namespace needs unshared; it
            # stays in this view.
            _check(_libc.unshare(CLONE_FS), "unshare(CLONE_FS)")
            _check(_libc.setns(mnt, CLONE_NEWNS), "setns(host mnt)")
            _check(_libc.setns(net, CLONE_NEWNET), "setns(host net)")
            # (setns puts the root and working folder at the namespace's.)
            os.fchdir(root)
            os.chroot(".")
            os.fchdir(cwd)
        finally:
            for fd in keep:
                os.close(fd)

    try:
        _check(_libc.unshare(flags), "unshare")
        _read_only(AT_FDCWD, b"/", AT_RECURSIVE, MS_PRIVATE)
        if flags & CLONE_NEWNET:
            _loopback_up()
        _fresh_own(cfg, folder)
    except BaseException:
        leave()
        raise
    return leave


def _loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", IFF_UP | IFF_RUNNING))
    finally:
        s.close()


def _ignore_signals():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE, signal.SIGALRM,
                signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (OSError, ValueError):
            pass


def _kill_all(wait=2.0):
    """In an init: kills every other process of its pid namespace and reaps
    them; returns once none is left (or after wait seconds)."""
    import time
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = -1
            if pid <= 0:
                break
        try:
            os.kill(-1, 0)
        except ProcessLookupError:
            return
        # Not all gone yet (exiting, or children of processes outside the
        # namespace): wait for the next to end.
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.0005)


def _has_children():
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _recv_fds(sock):
    data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
    fds = []
    for level, kind, body in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            n = len(body) - len(body) % 4
            fds += [int.from_bytes(body[i:i + 4], sys.byteorder, signed=True) for i in range(0, n, 4)]
    return data, fds


def slot_main(cfg, chan):
    """Fork mode: the life of a slot's init (pid 1 of the slot's pid
    namespace). It prepares the slot, says "ready", then reaps the orphans
    of its runs. After a run that may need it the warm interpreter says
    "kill" (some process of the run may be left), "check" (none is) or
    "refresh" (none is, and the run changed the slot's view), with the
    folder to put back in place if it changes (a detached copy of it,
    passed as a descriptor, and its path after a NUL): told "kill", the
    init kills every process left in the namespace; then, if told
    "refresh", or the folder changes, or the run changed the slot's own
    mounts (_SlotView), it makes them afresh (after saying "clean" when
    told "kill"); it says "fresh" when the slot may take its next run, with
    "new" if it made them afresh. It ends with its channel (the warm
    interpreter's end)."""
    import select
    confine.set_dumpable(False)  # no ptrace, no /proc reads of it
    _ignore_signals()
    try:
        # The IPC namespace of the slot's runs (see ipc_probes).
        _check(_libc.unshare(CLONE_NEWIPC), "unshare(CLONE_NEWIPC)")
        prepare_slot(cfg)
        view = _SlotView(cfg)
        view.fresh = view._state()
    except BaseException as e:
        chan.send(json.dumps({"error": str(e)}).encode())
        os._exit(1)
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    chan.send(b'{"ready":true}')
    poll = select.poll()
    poll.register(chan.fileno(), select.POLLIN)
    poll.register(r, select.POLLIN)
    while True:
        for fd, _ in poll.poll():
            if fd == r:
                try:
                    os.read(r, 512)
                except OSError:
                    pass
                while True:
                    try:
                        pid, _ = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid <= 0:
                        break
                continue
            try:
                data, fds = _recv_fds(chan)
            except OSError:
                data, fds = b"", []
            if not data:
                os._exit(0)
            op, _, folder = data.partition(b"\0")
            tree = fds.pop(0) if fds else -1
            for extra in fds:
                os.close(extra)
            try:
                # The run's own process is gone: every other one left is a
                # child of this init, or a child's descendant.
                if op == b"kill" and _has_children():
                    _kill_all()
                fresh = b'{"fresh":true}'
                if op == b"refresh" or tree >= 0 or view.changed():
                    if op == b"kill":
                        # The run's answer does not wait for the rest; the
                        # next run of the slot does.
                        chan.send(b'{"clean":true}')
                    view.refresh(tree, os.fsdecode(folder))
                    fresh = b'{"fresh":true,"new":true}'
            except BaseException as e:
                chan.send(json.dumps({"error": str(e)}).encode())
                os._exit(1)
            finally:
                if tree >= 0:
                    os.close(tree)
            chan.send(fresh)


def wait_run(child):
    """Spawn mode: the init's life once the run's process is started: reap
    every process that ends in the namespace, and return the wait status of
    the run's own process when it ends."""
    confine.set_dumpable(False)  # no ptrace, no /proc reads of it
    _ignore_signals()
    for fd in (0, 1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == child:
            return status


# ------------------------------------------------------- spawn mode's init


def spawn_init(config, spawn, folder):
    """Spawn mode, in the run's trampoline, pid 1 of a new pid namespace:
    isolates the run (config, json: the sandbox's) and forks the run's own
    process, in which it returns; the init goes on as wait_run, and writes
    the run's wait status to spawn's status_fd (spawn, json: that and the
    run's cgroups, the cgroup.procs files the run's process joins)."""
    cfg = json.loads(config)
    spawn = json.loads(spawn)
    status_fd = spawn["status_fd"]
    os.set_inheritable(status_fd, False)
    # The cgroup files are opened before the view turns read-only.
    cgroups = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in spawn.get("cgroups") or ()]
    prepare_slot(cfg, tmp=False)
    private_view(cfg, folder)
    pid = os.fork()
    if pid:
        for fd in cgroups:
            os.close(fd)
        status = wait_run(pid)
        os.write(status_fd, b"%d" % status)
        os._exit(0)
    os.close(status_fd)
    os.setpgid(0, 0)
    for fd in cgroups:
        os.write(fd, b"0")
        os.close(fd)
