# scripthost fork server: the warm interpreter of executor.ForkRunner.
#
# Started by Go as `python -c <bootstrap> <this source> <control fd> <preload json>
# <options json> <confine.py's source> <limits> <user> <sandbox config json>
# <sandbox.py's source>` (fork_linux.go's args; the three sources are put in
# sys.argv by the bootstrap, which reads them from fd 4),
# with the same interpreter and environment as a spawned run, so sys.flags and
# everything the interpreter derives from its environment are those of
# `python script.py`. It imports the common standard library once, then for
# each run forks a child that becomes that run's process.
#
# Protocol: one JSON object per SOCK_SEQPACKET message on the control socket.
# A job is {"path":P,"dir":D,"args":[...]} ("bpath"/"bdir"/
# "bargs", base64 bytes, replace "path"/"dir"/"args" when they are not
# UTF-8; "unbuffered":true gives the child unbuffered stdout and stderr, a
# streamed run); no job ever sits in this process's memory, which every
# child copies.
# Hand-over: the children are forked ahead when Go asks, and each is
# Go's from then on (Go sends it its job):
#   Go -> here: {"op":"fork","n":N}; {"op":"kill","pid":P} (P's group);
#   here -> Go: {"op":"idle","pid":P} with the child's channel and a pidfd
#               of it, on which Go sends the child its job and the run's
#               stdin, stdout and stderr (and the job in a memfd, "{}" in
#               the message, when it is large); under the sandbox, each
#               child is in a free slot of its own, and a third fd is its
#               slot's pids.current (when the slot has a pids cgroup), and
#               the job names its folder's device and inode ("fid");
#               {"op":"forkfailed","n":N,"error":E}: N of the children
#               asked for will not come (Go counts each it asked for
#               until it is announced);
#               {"op":"exited","pid":P,"status":S} (S: the raw wait status)
#               once the child ended, with a job or without (under the
#               sandbox, once nothing of it is left in its slot).
# And:
#   Go -> here: {"op":"parent","dir":D,"path":P} with two fds, a control
#               socket and a memfd holding a script's code: fork a warm
#               parent for that script (see "warm parents" below; P, its
#               path when it is UTF-8), which answers on that socket with
#               the protocol of this one.
#   here -> Go: {"op":"ready","pid":P} (a warm parent adds
#               "imports", the modules it imported, and "memory", its own);
#               a warm parent first says {"op":"forked","pid":P} with a
#               pidfd of itself, as soon as it is forked: Go ends it if
#               its start fails or takes too long (its imports may hang);
#               {"op":"fatal","error":E}.
# End of file on the control socket stops the server and kills every run.
#
# The run sandbox (sandbox.py) is on when it has a config: each run's child
# is forked into a slot of its own (see _Slot) and isolated before its
# script runs. The confinement (<limits> and <user>, confine.py's): a child
# sets the run's resource limits and drops to the run's user once it has
# entered the folder and opened the script, before the script runs.
# What is left of a run's process group once its leader exits is killed
# here (the group id is the leader's pid, which cannot name another group
# until the leader is reaped); Go, the subreaper of every run, reaps it.
#
# Why the child runs frameless: a fresh interpreter runs a script's module
# frame with nothing under it (warnings' stacklevel, traceback.print_stack()
# and sys._getframe() see that). So the forks happen in a thread whose
# bootstrap is a C callable (deque.extend over map(call, generator)): in the
# child, that thread is the only one (CPython makes it the main thread), the
# generator suspends at each yield, and the C machinery calls what it yields
# -- PyRun_SimpleFileExFlags, then Py_Exit -- with no Python frame of ours on
# the stack. The script then runs, fails, exits and finalizes inside
# CPython's own C code exactly as under `python script.py`.

# ------------------------------------------------ what a script may import
#
# A fresh interpreter has only its start-up modules in sys.modules (the
# bootstrap notes them in _STARTUP before importing anything). Everything
# this process imports beyond them -- its own modules, the common standard
# library, --preload -- is taken out of sys.modules again before any child
# is forked (see _hide_imports), and handed back when a script imports it
# and the import would load that very file (see _served_load_unlocked): a
# sibling timeit.py shadows timeit, `import urllib` binds no urllib.parse,
# and a C-level warning finds no warnings module to format it. To hand a
# module out as a fresh import would load it -- with the modules its import
# loads, in the same order, bound to their parents -- what each import here
# imports is recorded, from here on, until the preloads are done.

import _frozen_importlib as _bootstrap
import _imp
import builtins
import sys

_IMPORTS = {}  # module name -> the names its import imported, in order
_loading = []  # the modules being loaded, innermost last
_LATE_BOUND = set()  # submodules imported after their package was
_original_find_and_load = _bootstrap._find_and_load
_import = builtins.__import__


_unrecorded = [_original_find_and_load]  # what the recording wraps


def _recording_find_and_load(name, import_):
    if _loading:
        _IMPORTS[_loading[-1]].append(name)
    if name in sys.modules:
        return _unrecorded[0](name, import_)
    _IMPORTS.setdefault(name, [])
    _loading.append(name)
    try:
        module = _unrecorded[0](name, import_)
    finally:
        _loading.pop()
    parent = name.rpartition(".")[0]
    if parent and parent not in _loading:
        # Bound to a package whose own import was over: a fresh import of
        # the package does not bind it.
        _LATE_BOUND.add(name)
    return module


def _recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    # The pure-Python __import__ takes every import statement through
    # _find_and_load, hits included; submodules named in a fromlist that are
    # bound already are recorded too (a fresh import may load them).
    module = _bootstrap.__import__(name, globals, locals, fromlist, level)
    if fromlist and _loading:
        base = getattr(module, "__name__", None)
        for sub in fromlist:
            full = "%s.%s" % (base, sub)
            if isinstance(sub, str) and full in sys.modules:
                _IMPORTS[_loading[-1]].append(full)
    return module


# The module objects of the imports here, side by side. A run's served
# import takes a reference to each module it hands over, a write to that
# module's page: made one by one as their imports go, among the objects
# each import makes, the 171 modules of `import numpy` lay on ~90 pages,
# each copied in every run that imports it. Made ahead in batches instead
# (a module as the import system makes it, its __init__ run again with its
# name), they share a few. (Extension modules are made by their C code.)
_MODULE_STOCK = []
_original_new_module = _bootstrap._new_module


def _stocked_new_module(name):
    if not _MODULE_STOCK:
        _MODULE_STOCK.extend(_original_new_module("") for _ in range(128))
        _MODULE_STOCK.reverse()  # (taken in the order they were made)
    module = _MODULE_STOCK.pop()
    module.__init__(name)
    return module


def _record_imports(on):
    if on:
        _unrecorded[0] = _bootstrap._find_and_load
    _bootstrap._find_and_load = _recording_find_and_load if on else _unrecorded[0]
    builtins.__import__ = _recording_import if on else _import
    _bootstrap._new_module = _stocked_new_module if on else _original_new_module
    if not on:
        del _MODULE_STOCK[:]


_record_imports(True)


def _script_startup():
    # What `python -c` loaded that a script run does not: the current
    # folder's path importer cache entry (from the '' first on sys.path)
    # and, from Python 3.13 on, linecache (which keeps the -c source).
    modules, cache, path = _STARTUP
    if sys.version_info >= (3, 13):
        modules = [m for m in modules if m != "linecache"]
    import posix
    cwd = posix.getcwd()
    if path[:1] == [""] and cwd not in path:
        cache = {k: v for k, v in cache.items() if k != cwd}
    return modules, cache, path


_STARTUP = _script_startup()

import signal

# What a fresh interpreter has, before anything here changes it.
_SIGNALS = {}
for _s in signal.valid_signals():
    try:
        _SIGNALS[_s] = signal.getsignal(_s)
    except (OSError, ValueError):
        pass
_SIGMASK = signal.pthread_sigmask(signal.SIG_BLOCK, [])

import _thread
import array
import binascii
import collections
import ctypes
import functools
import gc
import importlib
import io
import itertools
import json
import json.decoder
import mmap as mmap_module
import operator
import os
import resource
import select
# (Not socket.py, nor tempfile or shutil: every module this process imports
# for itself makes each fork and each run's exit dearer, and more of its
# pages are written by the runs. A script that imports them has them in its
# warm parent.)
import _socket as socket
import sys
import types
import warnings

_STDLIB = (
    "abc argparse array ast base64 binascii bisect calendar codecs collections "
    "collections.abc contextlib copy csv dataclasses datetime decimal difflib "
    "enum fnmatch fractions functools glob gzip hashlib heapq hmac html inspect "
    "io itertools json locale math numbers operator os pathlib pickle platform "
    "pprint queue random re secrets shlex shutil signal socket statistics "
    "string struct subprocess tempfile textwrap threading time timeit "
    "traceback types typing unicodedata urllib.parse uuid warnings zlib"
).split()

# The startup state of __main__ (CPython's add_main_module), in order,
# without what the bootstrap added: each run gets a copy.
_MAIN_TEMPLATE = [
    (k, v) for k, v in sys.modules["__main__"].__dict__.items()
    if k.startswith("__") and k.endswith("__")
]

_CTL_FD = int(sys.argv[2])
_PRELOAD = json.loads(sys.argv[3])
# "stdlib": false, a small base, that leaves the common standard library to
# the warm parents of the scripts that import it; "msg_max", the size of the
# largest control message.
_OPTIONS = json.loads(sys.argv[4])
_MSG_MAX = _OPTIONS["msg_max"]
# The run confinement (confine.py): the rule, and the runs' limits and user.
_CONF = types.ModuleType("_scripthost_confine")
exec(compile(sys.argv[5], "<scripthost confine>", "exec"), _CONF.__dict__)
_CONFINE = _CONF.parse(sys.argv[6], sys.argv[7])
# The run sandbox (sandbox.py) and its config, when it is on.
_SANDBOX_CFG = json.loads(sys.argv[8]) if sys.argv[8] else None
_SANDBOX = None
if _SANDBOX_CFG is not None:
    _SANDBOX = _CONF.load("sandbox", sys.argv[9], confine=_CONF)
    if os.geteuid() == 0:
        # The bounding set matters at an exec only, and this process and
        # its slots' inits never exec: it is emptied here once for all
        # the runs' children (a run that stays root then only clears its
        # own capabilities, see lock_down).
        _CONF.drop_bounding_set()
_PYTHON = sys.orig_argv[0] if hasattr(sys, "orig_argv") else sys.executable
_WARM_PID = os.getpid()

# The parameters of the interpreter's own stdio (CPython's create_stdio):
# a fresh interpreter builds the run's stdio from the same configuration.
_ENCODING = sys.__stdout__.encoding
_ERRORS = sys.__stdout__.errors
_STDIN_ERRORS = sys.__stdin__.errors if sys.__stdin__ is not None else _ERRORS
_STDERR_ERRORS = sys.__stderr__.errors
_BUFFERED = not sys.__stdout__.write_through

# `python -c` puts '' (the current folder) first on sys.path; a script run
# puts its own folder there instead, which the child does.
_SAFE_PATH = getattr(sys.flags, "safe_path", False)
if not _SAFE_PATH and sys.path and sys.path[0] == "":
    del sys.path[0]


def _relative_pythonpath():
    """The PYTHONPATH entries a fresh interpreter resolves against its
    folder, as (what they are here, with "/" as the folder, the entry), when
    there are any; a run resolves them against its own folder."""
    if sys.flags.ignore_environment:
        return []
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if not any(e == "" or not os.path.isabs(e) for e in entries):
        return []
    cwd, found = os.getcwd(), []
    for e in entries:
        # As the interpreter wrote it on sys.path (from "/": "//lib").
        forms = (cwd + "/" + e, os.path.join(cwd, e), os.path.normpath(os.path.join(cwd, e)))
        here = next((f for f in forms if f in sys.path), None)
        if here is not None:
            found.append((here, e))
    return found


# The environment as the kernel shows it (/proc/self/environ): a run gets it
# back, with its own PWD last, as a spawned run has it.
with open("/proc/self/environ", "rb") as _f:
    _ENV_BLOCK = [kv for kv in _f.read().split(b"\0") if kv and not kv.startswith(b"PWD=")]
_PYTHONPATH_REL = _relative_pythonpath()

_libc = _CONF.libc()
_fdopen = _libc.fdopen
_fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
_fdopen.restype = ctypes.c_void_p
_on_exit = _libc.on_exit
_on_exit.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_on_exit.restype = ctypes.c_int
_libc_signal = ctypes.cast(_libc.signal, ctypes.c_void_p).value
_libc_signal_fn = _libc.signal
_libc_signal_fn.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc_signal_fn.restype = ctypes.c_void_p
_libc.fflush.argtypes = [ctypes.c_void_p]
_libc_raise = ctypes.cast(getattr(_libc, "raise"), ctypes.c_void_p).value
_run_file = ctypes.pythonapi.PyRun_SimpleFileExFlags
_run_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
_run_file.restype = ctypes.c_int
_py_exit = ctypes.pythonapi.Py_Exit
_py_exit.argtypes = [ctypes.c_int]
_py_exit.restype = None
_run_string = ctypes.pythonapi.PyRun_SimpleStringFlags
_run_string.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
_run_string.restype = ctypes.c_int
_get_importer = ctypes.pythonapi.PyImport_GetImporter
_get_importer.argtypes = [ctypes.py_object]
_get_importer.restype = ctypes.py_object
_tstate_get = ctypes.pythonapi.PyThreadState_Get
_tstate_get.restype = ctypes.c_void_p


def _log(msg):
    try:
        os.write(2, ("forkserver: %s\n" % msg).encode("utf-8", "backslashreplace"))
    except OSError:
        pass


# ------------------------------------------------------- the recursion depth
#
# Up to CPython 3.11 one counter bounds both Python frames and C calls, and
# the C calls that start a child's script (the thread's deque.extend, map's
# call, partial, ctypes) count, so a script would hit RecursionError a few
# frames earlier than under `python script.py`. The difference is measured
# once, here, and given back to each child. Later versions count Python
# frames apart from C calls, and need nothing.


def _recursion_field():
    """The offset in this thread's state of the counter that Python calls
    move by one (3.10: depth, up; 3.11: remaining, down), when it can be
    found and checked; None otherwise."""
    if sys.version_info >= (3, 12):
        return None
    ints = (ctypes.c_int * 64).from_address(_tstate_get())

    def nested(i, n):
        return nested(i, n - 1) if n else ints[i]

    for i in range(64):
        here = ints[i]
        one = nested(i, 0)
        if one - here not in (1, -1):
            continue
        step = one - here
        if nested(i, 3) == here + 4 * step and ints[i] == here:
            return i * 4
    return None


_REC_OFF = _recursion_field()


# ------------------------------------------------- the collector's counts
#
# A child starts its script with the counts a fresh interpreter has there
# (_fresh_gc_counts). No API sets them: they are found once, here, in the
# interpreter's state.


def _gc_counts_field():
    """Views of the collector's three generations' counts in this
    interpreter's state, youngest first (up to CPython 3.13 each generation
    is a list head of two pointers, its threshold and its count, one after
    the other), when they can be found and checked; None otherwise (Python
    3.14's incremental collector counts otherwise). Found by the
    thresholds, set for the search to values no other field holds."""
    if sys.version_info >= (3, 14):
        return None
    try:
        get = ctypes.pythonapi.PyInterpreterState_Get
    except AttributeError:
        return None
    get.restype, get.argtypes = ctypes.c_void_p, ()
    interp = get()
    marks = (7717, 7723, 7727)
    saved = gc.get_threshold()
    gc.set_threshold(*marks)
    try:
        mem = ctypes.string_at(interp, 8192)
    finally:
        gc.set_threshold(*saved)
    step = 2 * ctypes.sizeof(ctypes.c_void_p) + 8
    want = [m.to_bytes(4, sys.byteorder) for m in marks]
    at = mem.find(want[0])
    while at >= 0 and not (at % 4 == 0 and all(mem[at + i * step:at + i * step + 4] == want[i] for i in (1, 2))):
        at = mem.find(want[0], at + 1)
    if at < 0 or at + 2 * step + 8 > len(mem):
        return None
    counts = tuple(ctypes.c_int.from_address(interp + at + 4 + i * step) for i in range(3))
    was = counts[0].value
    counts[0].value = 3
    found = gc.get_count()[0] == 3
    counts[0].value = was
    return counts if found and (counts[1].value, counts[2].value) == gc.get_count()[1:] else None


_GC_COUNTS = _gc_counts_field()


def _counter():
    # A view of this thread's counter: its value, read by the caller, is
    # the caller's own (a call here would count one more level).
    return ctypes.c_int.from_address(_tstate_get() + _REC_OFF)


def _recursion_gap(top):
    """What to add to the counter at the top of the forker's chain for it
    to read as at the top of a real main module (top)."""
    main = sys.modules["__main__"].__dict__
    done = _thread.allocate_lock()
    done.acquire()

    def probe():
        main["_scripthost_counter"] = _counter
        try:
            run = functools.partial(_run_string, b"_scripthost_probe = _scripthost_counter().value", None)
            yield _run_step(run, collections.deque())
        finally:
            done.release()

    _chain_thread(probe())
    done.acquire()
    got = main.pop("_scripthost_probe", None)
    main.pop("_scripthost_counter", None)
    if got is None:
        return 0
    return top - got


# ------------------------------------------------------ finalizing the child
#
# CPython 3.13 finalizes from the runtime's main thread state, which after a
# fork from another thread is the (deleted) state of the parent's main
# thread; the child's own thread state must take its place. The field is
# found next to the main thread's id, which it follows in _PyRuntimeState.


def _main_tstate_field():
    if sys.version_info < (3, 13):
        return None
    try:
        base = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    except (ValueError, AttributeError):
        return None
    ident, me = _thread.get_ident(), _tstate_get()
    words = (ctypes.c_size_t * 2048).from_address(base)
    hits = [i for i in range(2047) if words[i] == ident and words[i + 1] == me]
    if len(hits) != 1:
        return None
    return base + (hits[0] + 1) * ctypes.sizeof(ctypes.c_size_t)


_MAIN_TSTATE = _main_tstate_field()


# ------------------------------------------------------------ the stack
#
# A script runs on the thread it was forked from. A fresh interpreter runs
# it on the process's main stack, which grows on demand up to RLIMIT_STACK
# -- as the limit is when the stack grows, so a script may raise it and
# recurse deeply. A thread's stack has a fixed size. So the forker thread
# gets a stack that grows the same way: a MAP_GROWSDOWN mapping, placed in
# the room the kernel leaves below the main stack for its growth (the
# warm interpreter's own main stack cannot grow past its limit, below which
# this one starts). Where that cannot be had, the thread gets an ordinary
# stack, and a run's stack is that thread's 8 MiB.

_call = operator.methodcaller("__call__")
_THREAD_START = ctypes.CFUNCTYPE(None)
_threads = []  # what the threads started here run on, alive
_MAP_GROWSDOWN = 0x0100
_MAP_FIXED_NOREPLACE = 0x100000
_STACK_START = 256 << 10  # the mapping's first size; it grows from there
_mmap = _libc.mmap
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_mmap.restype = ctypes.c_void_p


def _growing_stack():
    """(address, size) of a fresh growing stack, or None."""
    try:
        with open("/proc/self/maps") as f:
            main = next(line for line in f if line.rstrip().endswith("[stack]"))
        low, high = (int(x, 16) for x in main.split()[0].split("-"))
        soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    except (OSError, StopIteration, ValueError):
        return None
    room = soft if soft != resource.RLIM_INFINITY and soft <= 1 << 30 else 64 << 20
    # Below what the main stack may ever take, past the kernel's guard gap.
    top = (min(low, high - room) - (2 << 20)) & ~0xFFFF
    want = top - _STACK_START
    got = _mmap(want, _STACK_START, mmap_module.PROT_READ | mmap_module.PROT_WRITE,
                mmap_module.MAP_PRIVATE | mmap_module.MAP_ANONYMOUS | _MAP_GROWSDOWN | _MAP_FIXED_NOREPLACE, -1, 0)
    if got in (None, ctypes.c_void_p(-1).value):
        return None
    if got != want:
        _libc.munmap(ctypes.c_void_p(got), ctypes.c_size_t(_STACK_START))
        return None
    return got, _STACK_START


def _chain_thread(gen, growing=False):
    """Starts a thread whose bootstrap is a C callable (the C machinery
    calls what gen yields, with no Python frame of ours under it), on a
    growing stack if asked and possible."""
    run = _THREAD_START(functools.partial(collections.deque(maxlen=1).extend, map(_call, gen)))
    attr = ctypes.create_string_buffer(128)  # pthread_attr_t, with room
    _libc.pthread_attr_init(attr)
    stack = None
    if growing:
        # A warm parent, forked from the base server, has its forker's
        # stack (the thread did not survive the fork): it is free again.
        stack = next((st for _, st in _threads if st is not None), None) or _growing_stack()
    if stack is not None:
        _libc.pthread_attr_setstack(attr, ctypes.c_void_p(stack[0]), ctypes.c_size_t(stack[1]))
    tid = ctypes.c_ulong()
    err = _libc.pthread_create(ctypes.byref(tid), attr, run, None)
    _libc.pthread_attr_destroy(attr)
    if err:
        raise OSError(err, "cannot start a thread: %s" % os.strerror(err))
    _libc.pthread_detach(tid)
    _threads.append((run, stack))
    return stack is not None


# ------------------------------------------------------- serving imports


_HIDDEN = {}  # name -> module: imported here, not loaded in a fresh interpreter
_HIDDEN_TOPS = frozenset()  # their top-level names a sibling file may shadow
_CLOSURE_TOPS = {}  # name -> the top-level names a fresh import of it loads
_WARM = {}  # name -> module: every module of this process, hidden or not
_WARM_PATH = frozenset()  # sys.path here; a run's other entries may shadow
_WARM_PATH_ORDER = [()]  # the same, in order
_shadow_cache = [None, frozenset()]  # sys.path, the names it shadows


def _hide_imports():
    """Takes out of sys.modules, and off their parents, the modules a fresh
    interpreter has not loaded; forgets the path importer cache entries it
    does not have. Idempotent."""
    global _HIDDEN_TOPS
    startup, cache, _ = _STARTUP
    keep = set(startup) | set(_SENTINELS)
    modules = sys.modules
    for name in [n for n in modules if n not in keep]:
        mod = modules.pop(name)
        if isinstance(mod, types.ModuleType):
            _HIDDEN[name] = mod
    for name, mod in _HIDDEN.items():
        parent, _, child = name.rpartition(".")
        owner = modules.get(parent) or _HIDDEN.get(parent)
        if name in _LATE_BOUND and owner is not None and owner.__dict__.get(child) is mod:
            del owner.__dict__[child]
    for key in [k for k in sys.path_importer_cache if k not in cache]:
        del sys.path_importer_cache[key]
    _WARM.update((k, v) for k, v in modules.items() if isinstance(v, types.ModuleType))
    _WARM.update(_HIDDEN)
    for name in ("__main__",) + _SENTINELS:
        _WARM.pop(name, None)
    _HIDDEN_TOPS = frozenset(
        n for n in (k.partition(".")[0] for k in _HIDDEN)
        if not _imp.is_builtin(n) and not _imp.is_frozen(n))
    for name, mod in _HIDDEN.items():
        if "." not in name and name not in _ENTRY_OF:
            _ENTRY_OF[name] = _path_entry_of(mod)
        if name not in _CLOSURE_TOPS:
            _CLOSURE_TOPS[name] = _closure_tops(name)
    new = [name for name in _HIDDEN if name not in _NAME]
    if new:
        # The strings a run's served import takes a reference to (a write
        # to each one's page): copies, made side by side in fresh pools
        # (the holes of those in use filled first), so that they lie on a
        # few pages rather than in the holes the imports left.
        _fill_pools()
        for name in new:
            _NAME[name] = (name + ".")[:-1]
        for name in new:
            parent, _, child = name.rpartition(".")
            _PARENT[name] = _NAME.get(parent, parent)
            if parent:
                _CHILD[name] = child
    for name in _HIDDEN:
        if name not in _PLANS and name not in _UNSERVED:
            plan = _plan(name)
            if _UNSEEN and not _UNSEEN.isdisjoint(plan):
                _UNSERVED.add(name)
            else:
                _PLANS[name] = plan


_UNSEEN = set()  # modules here that a run's view finds elsewhere, or not at all
_UNSERVED = set()  # hidden modules whose import loads one of those: never handed over


def _note_unseen():
    """In the runs' view of the machine (the sandbox's, sandbox.import_view):
    notes the modules of this process that an import there would not find
    where they were found (a PYTHONPATH folder the runs do not see, which
    this process, started outside that view, saw). No run is handed them,
    nor anything whose import loads them; a run imports those itself."""
    find = sys.modules["_frozen_importlib_external"].PathFinder.find_spec
    for name, mod in list(sys.modules.items()):
        spec = getattr(mod, "__spec__", None)
        if spec is None or not spec.has_location:
            continue  # built in, frozen, a namespace package
        parent = name.rpartition(".")[0]
        path = getattr(sys.modules.get(parent), "__path__", None) if parent else None
        if parent and path is None:
            continue
        try:
            found = find(name, path)
        except Exception:
            found = None
        if found is None or found.origin != spec.origin:
            _UNSEEN.add(name)


_ENTRY_OF = {}  # top-level name -> the sys.path entry it was found in, or None


def _path_entry_of(mod):
    spec = getattr(mod, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if not isinstance(origin, str) or not os.path.isabs(origin):
        return None  # built in, frozen: found before any path entry
    found = [p for p in sys.path if isinstance(p, str) and p and origin.startswith(p.rstrip("/") + "/")]
    return max(found, key=len) if found else None


def _search_path_until(top):
    """The path importer cache entries a search for top would have made on
    its way: every sys.path entry before the one it is in."""
    entry = _ENTRY_OF.get(top)
    if entry is None:
        return
    cache = sys.path_importer_cache
    for p in sys.path:
        if p == entry:
            return
        if isinstance(p, str) and p not in cache:
            _get_importer(p)


def _closure_tops(name):
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(_IMPORTS.get(n, ()))
        parent = n.rpartition(".")[0]
        if parent:
            todo.append(parent)
    return frozenset(n.partition(".")[0] for n in seen) & _HIDDEN_TOPS


def _shadowed_names():
    """The hidden modules' top-level names found in the sys.path entries a
    run has that this process had not (the script's folder first): there, a
    fresh import may find another file. Names of files and folders, loosely:
    too many only means a module is imported afresh."""
    key = tuple(p for p in sys.path if isinstance(p, str))
    if _shadow_cache[0] == key:
        return _shadow_cache[1]
    ours = [p for p in key if p in _WARM_PATH]
    if len(set(ours)) != len(ours) or ours != [p for p in _WARM_PATH_ORDER[0] if p in ours]:
        # Entries moved (dropped ones shadow nothing): anything may be.
        _shadow_cache[:] = [key, _HIDDEN_TOPS]
        return _HIDDEN_TOPS
    found = set()
    for entry in key:
        if entry in _WARM_PATH:
            continue
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.update(n.partition(".")[0] for n in names)
    _shadow_cache[:] = [key, frozenset(found) & _HIDDEN_TOPS]
    return _shadow_cache[1]


def _plan(name):
    """How a fresh interpreter's import of a hidden module fills
    sys.modules: the names of the modules it loads, in their final order
    (each after what its import imported, parents first). (Names, not
    modules: a warm process holds a plan for each module it hid, whose
    entries, all the modules its import loads, add up to far more than the
    modules themselves; each child shares the lot.)"""
    order, seen = [], set(_STARTUP[0])

    def visit(n):
        if n in seen or n not in _HIDDEN:
            return
        parent = _PARENT[n]
        if parent:
            visit(parent)
            if n in seen:
                return
        seen.add(n)
        for dep in _IMPORTS.get(n, ()):
            visit(dep)
        order.append(_NAME[n])

    visit(name)
    return tuple(order)


def _serve(name):
    """Puts a hidden module back as a fresh import of it would load it; what
    is in sys.modules already stays."""
    modules = sys.modules
    for n in _PLANS.get(name, ()):
        if n in modules:
            continue
        mod = _HIDDEN[n]
        modules[n] = mod
        parent = _PARENT[n]
        # (A parent comes after its submodules: bound first, it is the one.)
        owner = (modules.get(parent) or _HIDDEN.get(parent)) if parent else None
        if owner is not None:
            child = _CHILD[n]
            if getattr(owner, "__dict__", _NO_DICT).get(child) is mod:
                continue  # bound already: written to, the page would be copied
            try:
                setattr(owner, child, mod)
            except (AttributeError, TypeError):
                pass


def _same_file(spec, mod):
    had = getattr(mod, "__spec__", None)
    if had is None or spec.origin != had.origin or type(spec.loader) is not type(had.loader):
        return False
    return spec.origin is not None or list(spec.submodule_search_locations or ()) == list(
        had.submodule_search_locations or ())


# Two steps of the import system, wrapped. _find_and_load hands a hidden
# module over at once where nothing a run changed can make the import find
# another file (the finders and path hooks are this process's, sys.path has
# this process's entries in their order, and those it has beside them hold
# no file of that name); _load_unlocked, once the finders found the module's
# very file, anywhere else. Compiled under importlib's file name, their
# frames are of the import machinery, which tracebacks leave out.
_SERVED_IMPORT_SOURCE = """
def _find_and_load(name, import_):
    if (name in _PLANS and sys.meta_path == _WARM_FINDERS[0] and sys.path_hooks == _WARM_FINDERS[1]
            and not _CLOSURE_TOPS.get(name, _NONE) & _shadowed_names()):
        # (The import lock, not the module's: no module code runs here.)
        _acquire_import_lock()
        try:
            if name not in sys.modules:
                _search_path_until(name.partition(".")[0])
                _serve(name)
        finally:
            _release_import_lock()
        module = sys.modules.get(name)
        if module is not None:
            return module
    return _original_find_and_load(name, import_)


def _load_unlocked(spec):
    mod = _HIDDEN.get(spec.name)
    if (mod is None or spec.name not in _PLANS or not _same_file(spec, mod)
            or _CLOSURE_TOPS.get(spec.name, _NONE) & _shadowed_names()):
        return _original_load_unlocked(spec)
    _serve(spec.name)
    return sys.modules[spec.name]
"""
_NONE = frozenset()
_PLANS = {}  # name -> _plan(name), for every hidden module
_PARENT = {}  # name -> the package a hidden module is bound to ("" for none)
_CHILD = {}  # name -> what it is bound to its package as
_NAME = {}  # name -> the one string of that name the plans hold
_WARM_FINDERS = [None, None]  # sys.meta_path, sys.path_hooks, as here
_acquire_import_lock, _release_import_lock = _imp.acquire_lock, _imp.release_lock
_NO_DICT = {}
_original_load_unlocked = _bootstrap._load_unlocked
exec(compile(_SERVED_IMPORT_SOURCE, _original_load_unlocked.__code__.co_filename, "exec"), globals())
_served_load_unlocked, _served_find_and_load = _load_unlocked, _find_and_load
del _load_unlocked, _find_and_load


# ---------------------------------------------------------------- the child
#
# Finalizing a child as CPython does costs more than running it: tearing
# down the warm interpreter's modules, interned strings and static objects
# writes to pages shared with the warm interpreter, which the kernel then
# copies one by one. Two sentinel modules, first in sys.modules, cut that:
#
#  - the first has no other reference, so CPython's module teardown, which
#    starts at the front of sys.modules, drops it first; its finalizer then
#    takes the warm interpreter's modules out of sys.modules (they stay
#    referenced here and are never torn down). What the script imported
#    itself, __main__ above all, is torn down as under a fresh interpreter:
#    its objects' __del__ run.
#  - the second is kept alive, so CPython clears its globals last of all
#    modules (after the final garbage collection too). When the exit code
#    is ours to know (the script ended or failed; not SystemExit, whose code
#    CPython keeps to itself), its finalizer flushes the standard streams as
#    CPython's last flush does, and ends the process; what CPython would do
#    after that prints nothing.
#
# Nothing of ours runs as Python code once the script has started, until
# the second finalizer has turned off any trace and profile function: what
# runs the script and exits, and the first finalizer, are chains of C
# callables (_c_chain), which no trace or profile function sees.

_SENTINELS = ("_scripthost_finalizer", "_scripthost_exit")
_exit_sentinel = []  # the second sentinel module, alive


def _c_chain(calls):
    """A callable of C code only that makes the calls, pulled lazily from
    the iterable calls, in order."""
    return functools.partial(collections.deque(maxlen=0).extend, map(_call, calls))


def _hide_warm_chain():
    # Pops the warm modules still in sys.modules, when called: every name
    # whose module is the warm one (lazily: the list is taken then).
    modules = sys.modules
    names = itertools.tee(filter(_WARM.__contains__, itertools.chain.from_iterable(map(list, [modules]))), 3)
    same = map(operator.is_, map(modules.get, names[0]), map(_WARM.__getitem__, names[1]))
    pops = map(modules.pop, itertools.compress(names[2], same))
    return functools.partial(collections.deque(maxlen=0).extend, pops)


def _exit_now(post):
    """Ends the process once the modules are torn down, when the script ran
    to its end or failed: post holds what running it returned and
    sys.last_type then."""
    if not sys.is_finalizing():
        return
    code = 1 if post[0] else 0
    sigint = code == 1 and post[1] is KeyboardInterrupt and not _zipapp[0]
    try:
        if _main_outlives_modules():
            raise _FinishAsCPython
        for name in ("stdout", "stderr"):
            f = getattr(sys, name, None)
            if f is not None and not getattr(f, "closed", True):
                f.flush()
    except BaseException:
        # CPython goes on: it reports a failed flush and exits with 120; an
        # uncaught KeyboardInterrupt then ends the process by SIGINT
        # (Py_RunMain's exit_sigint), done by two libc exit handlers.
        if sigint:
            _on_exit(_libc_raise, None)
            _on_exit(_libc_signal, 0)  # runs first: handlers run in reverse
        return
    _libc.fflush(None)
    if sigint:
        _libc_signal_fn(signal.SIGINT, 0)
        os.kill(os.getpid(), signal.SIGINT)
        code = 128 + signal.SIGINT
    else:
        # The output is all out: its end reaches Go now, not after the
        # kernel has torn the address space down (the exit's longest part).
        os.closerange(0, 3)
    if _LEARN[0] >= 0:
        _report_written_pages(_LEARN[0])
    os._exit(code)


class _FinishAsCPython(Exception):
    pass


_main_dict = [0]  # in a child: the id of __main__'s globals
_SYS_DICTS = []  # sys's globals, as a child starts with them


def _main_outlives_modules():
    """Whether something in sys (sys.excepthook set to a function of the
    script, say) still holds __main__'s globals: CPython finalizes them only
    when it clears sys, after the modules, and the process must go on until
    then (their __del__ run, a NamedTemporaryFile is removed). Builtins need
    no look: CPython has put them back as they were at its start before it
    tore the modules down, so nothing of the script's is left in them
    (tests/fidelity/finalize_builtins.py)."""
    main = _main_dict[0]
    for before, now in _SYS_DICTS:
        for k, v in list(now.items()):
            if v is None or before.get(k) is v:
                continue
            v = getattr(v, "__func__", v)
            if id(getattr(v, "__globals__", None)) == main or getattr(type(v), "__module__", None) == "__main__":
                return True
    return False


def _exit_chain(post):
    # Once the script ran to its end: no trace or profile function, then
    # _exit_now. After a SystemExit (post is empty), nothing.
    calls = (functools.partial(sys.settrace, None), functools.partial(sys.setprofile, None),
             functools.partial(_exit_now, post))
    ran = map(operator.ge, map(len, itertools.repeat(post, 3)), itertools.repeat(2, 3))
    return _c_chain(itertools.compress(calls, ran))


def _run_step(run, post, then=()):
    """The callable that runs the script: run, its result appended to post,
    then the calls of then, pulled lazily."""
    return functools.partial(post.extend, map(_call, itertools.chain((run,), then)))


def _after_script(post):
    # sys.last_type as the script left it, then Py_Exit with 1 if it failed
    # (the result was -1), 0 otherwise.
    code = map(abs, map(operator.getitem, itertools.repeat(post, 1), itertools.repeat(0, 1)))
    return itertools.chain((functools.partial(getattr, sys, "last_type", None),),
                           map(functools.partial, itertools.repeat(_py_exit, 1), code))


def _reserve_finalizer_slots():
    # In the warm interpreter, once: the two names go first in sys.modules.
    # Arming them then only replaces their values, which keeps their places.
    items = list(sys.modules.items())
    sys.modules.clear()
    sys.modules["_scripthost_finalizer"] = None
    sys.modules["_scripthost_exit"] = None
    sys.modules.update(items)


_finalizers = []  # made here, once, and armed: each child has its own copy, used once


def _make_finalizers(post):
    # (staticmethod: CPython calls the chain with no argument.)
    hide = type("_HideWarmModules", (), {"__slots__": (), "__del__": staticmethod(_hide_warm_chain())})
    last = type("_ExitNow", (), {"__slots__": (), "__del__": staticmethod(_exit_chain(post))})
    _finalizers[:] = [hide(), last()]


def _arm_finalizers():
    # In the warm interpreter, once: nothing finalizes it (it ends by
    # os._exit), and each child's sys.modules has them.
    hide = types.ModuleType("_scripthost_finalizer")
    last = types.ModuleType("_scripthost_exit")
    # The first one's only reference is its module's.
    last.finalizer, hide.finalizer = _finalizers.pop(), _finalizers.pop()
    _exit_sentinel.append(last)
    sys.modules[hide.__name__] = hide
    sys.modules[last.__name__] = last


def _stdio(fd, write, name, errors, buffered=_BUFFERED):
    # CPython's create_stdio, for a fresh interpreter's fds 0, 1 and 2
    # (buffered False: as under PYTHONUNBUFFERED=1).
    buffering = 0 if (write and not buffered) else -1
    buf = io.open(fd, "wb" if write else "rb", buffering, None, None, None, False)
    raw = buf.raw if buffering else buf
    raw.name = name
    isatty = raw.isatty()
    stream = io.TextIOWrapper(
        buf, _ENCODING, errors, "\n",
        buffered and (isatty or fd == 2),  # line_buffering
        not buffered,  # write_through
    )
    stream.mode = "w" if write else "r"
    return stream


_RUN_ENV = [None, None]  # the folder set up here for runs, and their environment block
_RUN_STDIO = []  # the runs' (stdin, stdout, stderr): buffered as configured, and unbuffered
_SIGNAL_FIXES = [False, []]  # whether a run resets its signal mask; the handlers it resets
_KEPT = []  # what a child drops of this process's: never freed there (see _prepare_runs)


def _prepare_runs(folder=None):
    """Before any child is forked, once: what each run needs that is not
    its job's, made here for every child to copy. A child writes to as few
    pages it shares with this process as it can (each is copied by the
    kernel); it frees none of this process's objects either (the freeing
    writes too): what it replaces is kept alive here. folder: that of a warm
    parent's script, whose runs all start there."""
    _flush_stdio()
    fixes = [(sig, handler) for sig, handler in _SIGNALS.items()
             if handler is not None and signal.getsignal(sig) is not handler]
    # (The forker thread, started later, has the mask this thread has now.)
    _SIGNAL_FIXES[:] = [signal.pthread_sigmask(signal.SIG_BLOCK, []) != _SIGMASK, fixes]
    if folder is not None:
        # The environment of the runs in folder, as a spawned run's: the
        # server's, PWD last.
        os.environ.pop("PWD", None)
        os.environ["PWD"] = folder
        _RUN_ENV[:] = [folder, b"".join([kv + b"\0" for kv in _ENV_BLOCK]) + b"PWD=" + os.fsencode(folder) + b"\0"]
    if _RUN_STDIO:
        return
    # The bootstrap's arguments (this program's source, sandbox.py's), done
    # with: each run has its own.
    sys.argv = sys.argv[:1]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = sys.orig_argv[:1]
    _KEPT.extend([sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__,
                  sys.modules.get("__main__"), sys.argv, getattr(sys, "orig_argv", None)])
    # The runs' stdio, made as CPython makes a fresh interpreter's: on pipes
    # in fds 0, 1 and 2, which a run's are (not seekable, not a terminal).
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    pipes = [os.pipe() for _ in range(3)]
    try:
        for fd, ends in enumerate(pipes):
            os.dup2(ends[0 if fd == 0 else 1], fd)
        stdin = _stdio(0, False, "<stdin>", _STDIN_ERRORS)
        for buffered in ((True, False) if _BUFFERED else (False,)):
            _RUN_STDIO.append((stdin, _stdio(1, True, "<stdout>", _ERRORS, buffered),
                               _stdio(2, True, "<stderr>", _STDERR_ERRORS, buffered)))
    finally:
        for fd, old in enumerate(saved):
            os.dup2(old, fd)
            os.close(old)
        for ends in pipes:
            for fd in ends:
                os.close(fd)
    if len(_RUN_STDIO) == 1:
        _RUN_STDIO.append(_RUN_STDIO[0])


def _prepare_child(chan, keep=()):
    """Right after the fork: what does not depend on the job. Everything of
    the warm interpreter's but the child's own channel (and keep) is
    closed."""
    # Die with the warm interpreter: a run must not outlive its owner.
    _die_with_warm()
    if _MAIN_TSTATE is not None:
        ctypes.c_void_p.from_address(_MAIN_TSTATE).value = _tstate_get()
    os.setpgid(0, 0)
    _thread_state_as_fresh()
    for sock in _OWNED_SOCKETS:
        if sock is not chan:
            sock.detach()  # the fd is closed below; the object must not close a reused number
    _CONF.close_fds([chan.fileno()] + list(keep))


def _die_with_warm():
    # (In a sandbox slot's pid namespace the parent is outside: 0. If the
    # warm interpreter is gone already, the channel ends, and so does this.)
    _CONF.die_with_parent((_WARM_PID, 0), 128 + signal.SIGKILL)


def _thread_state_as_fresh():
    # threading's after-fork code, run in a thread it did not start, leaves
    # the new main thread out of the locks its shutdown waits for; a fresh
    # interpreter's main thread is in them. Made in the warm process (see
    # _as_main_thread), it has that process's thread's native id.
    threading = _WARM.get("threading")
    main = getattr(threading, "_main_thread", None)
    lock = getattr(main, "_tstate_lock", None)
    locks = getattr(threading, "_shutdown_locks", None)
    if lock is not None and isinstance(locks, set) and not main.daemon:
        locks.add(lock)
    if getattr(main, "_native_id", None) is not None:
        main._native_id = _thread.get_native_id()


def _as_main_thread():
    """On the forker thread, before its first fork, when threading is
    imported: its Thread object for this thread, a main thread's, which
    threading's after-fork code then finds in each child instead of making
    one there (a child's most costly work after the fork)."""
    threading = _WARM.get("threading")
    try:
        if threading is not None and _thread.get_ident() not in threading._active:
            # This process's own main thread is left out of threading's
            # threads, which each child would otherwise stop.
            old = threading._main_thread
            _KEPT.append(old)
            threading._MainThread()
            threading._active.pop(old._ident, None)
            threading._dangling.discard(old)
    except Exception as e:
        _log("cannot make the main thread of the runs: %r" % (e,))


def _await_job(chan, keep=(), slot=None):
    """Waits for the job on the child's channel; None if there is none.
    Every descriptor from 3 up is closed then but those of keep (and the
    sandbox's). slot: the child's sandbox slot, if any."""
    try:
        data, fds = _recv(chan)
        if data == _AHEAD_MSG and not fds:
            _copy_ahead(chan)
            data, fds = _recv(chan)
    except OSError:
        os._exit(0)
    if not data:
        os._exit(0)  # the warm interpreter let this child go
    msg = _scan_json(data.decode(), 0)[0] if data != b"{}" else {}
    if len(fds) == 4:
        msg = _read_memfd(fds.pop())  # a large job, in a memfd
    # (Whether the run's sandbox slot has the run's folder in place.)
    placed = False
    if "op" in msg:
        fid = msg.get("fid")
        msg = _job(msg)  # as Go sent it (the canary's is a job already)
        if slot is not None:
            # Go names the folder's device and inode as it found them: the
            # slot has it in place if it put that very folder there.
            placed = (slot.placed is not None and slot.placed[0] == msg["dir"]
                      and tuple(fid or ()) == slot.placed[1:])
            if not placed and _SANDBOX.covers(_SANDBOX_CFG, msg["dir"]):
                # The warm process learns the run's folder (on the channel's
                # other end, which it kept) to put it in place for the
                # slot's next runs: see _Server.clean_slot.
                try:
                    chan.sendmsg([os.fsencode(msg["dir"])], [], socket.MSG_NOSIGNAL)
                except OSError:
                    pass
    msg["placed"] = placed
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    chan.detach()
    # The sandbox's, closed once the run's view is set up.
    _CONF.close_fds(list(keep) + list(_SANDBOX.kept_fds() if _SANDBOX is not None else ()))
    return msg


def _confine():
    """Once the run's folder is entered and its script opened, before
    anything of the script runs: the run's confinement. (The server, which
    reads the scripts, opens them: a folder the run user cannot read still
    runs its scripts, which cannot read beside them.)"""
    _CONF.confine(_CONFINE)
    if _CONFINE["user"]:
        # A change of credentials clears these: set them as a process started
        # by that user has them, and die with the warm interpreter again.
        _CONF.set_dumpable(True)
        _die_with_warm()


def _become_run(job, ahead=None):
    """Turns this process into the run's; returns the FILE* of the script,
    or None after printing what `python script.py` prints when the file
    cannot be opened (then the exit code is 2). What every run of this
    process has in common was made ready before the fork (_prepare_runs),
    and what does not depend on the job before the job came, when ahead is
    not None (_become_run_ahead): a child only sets what is the job's own,
    and writes to as few of the pages it shares with this process as it
    can, each of which the kernel copies."""
    path = job["path"]
    args = job["args"]
    folder = job["dir"]  # as Go's filepath.Dir has it, like spawn's cwd and PWD
    os.chdir(folder)
    env = _RUN_ENV[1] if folder == _RUN_ENV[0] else None
    if env is None:
        # A spawned run's environment is the server's with PWD last.
        os.environ.pop("PWD", None)
        os.environ["PWD"] = folder
    unbuffered = job.get("unbuffered")
    if unbuffered:
        os.environ["PYTHONUNBUFFERED"] = "1"  # a streamed run, as spawn has it
    if ahead is None:
        _fresh_signals()
    _run_stdio(1 if unbuffered and _BUFFERED else 0)

    same = ahead is not None and path == ahead.path and folder == ahead.folder
    if not (same and ahead.shown and not args):
        sys.argv = [path] + args
        if hasattr(sys, "orig_argv"):
            sys.orig_argv = [_PYTHON, path] + args
        _show_as_run(_cmdline(path, args),
                     env or b"".join([kv + b"\0" for kv in _ENV_BLOCK]) + b"PWD=" + folder.encode(*_FS_ENCODING) + b"\0")
    if same and ahead.holds():
        fd, err, importer = ahead.fd, 0, None
    else:
        if ahead is not None:
            ahead.undo()
        if _PYTHONPATH_REL:
            _resolve_pythonpath(folder)
        fd, err, importer = _open_script(path)
    if ahead is None:
        _warnings_as_fresh()
    if importer is not None:
        return None

    sys.audit("cpython.run_file", path)
    fp = None
    if fd >= 0:
        fp = _fdopen(fd, b"rb")
        err = ctypes.get_errno()
        if not fp:
            os.close(fd)
    if not fp:
        sys.stderr.write("%s: can't open file %r: [Errno %d] %s\n"
                         % (_PYTHON, path, err, os.strerror(err)))
        return None
    return fp


def _fresh_signals():
    # The signal mask and handlers of a fresh interpreter.
    if _SIGNAL_FIXES[0]:
        signal.pthread_sigmask(signal.SIG_SETMASK, _SIGMASK)
    for sig, handler in _SIGNAL_FIXES[1]:
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError):
            pass


def _run_stdio(use):
    """Makes stdio the run's: the buffered kind (use 0) or the unbuffered
    one (1), which may be the same. The run's stdio is referenced from sys
    alone, as in a fresh interpreter: dropped at the end, it is flushed
    then. The kind not used is kept (never freed in a child)."""
    if _RUN_STDIO:
        stdio, other = _RUN_STDIO[use], _RUN_STDIO[1 - use]
        del _RUN_STDIO[:]
        if use == 0 and other is not stdio and _STDIO_AHEAD:
            # Ahead of the job: the buffered kind, the other one kept for
            # a job that wants it.
            _STDIO_AHEAD[0] = other
            other = stdio
    elif use and _STDIO_AHEAD[0] is not None:
        # Chosen ahead of the job, which wants the other kind.
        stdio, other = _STDIO_AHEAD[0], (None, sys.stdout, sys.stderr)
        _STDIO_AHEAD[0] = None
    else:
        if _STDIO_AHEAD[0] is not None:
            _KEPT.append(_STDIO_AHEAD[0][1:])
            _STDIO_AHEAD[0] = None
        return
    if other is not stdio:
        _KEPT.append(other[1:])
    sys.stdin = sys.__stdin__ = stdio[0]
    sys.stdout = sys.__stdout__ = stdio[1]
    sys.stderr = sys.__stderr__ = stdio[2]


_STDIO_AHEAD = []  # in a child ahead of its job: [the unbuffered stdio, when it is another kind]


def _cmdline(path, args):
    enc = _FS_ENCODING
    return _PYTHON_B + path.encode(*enc) + b"\0" + b"".join([a.encode(*enc) + b"\0" for a in args])


def _open_script(path):
    """Opens the script: (fd, errno, the importer of a zip application).
    As pymain_run_python: a file that a path hook takes (a zip application)
    runs as its __main__ module, from sys.path[0]; the lookup leaves the
    file's entry in sys.path_importer_cache. Otherwise the script's real
    folder goes first on sys.path."""
    # The script, opened once: read here as CPython's zipimporter reads it,
    # and run from the same descriptor. (The server, which reads the
    # scripts, opens them with its rights, before the switch to the run
    # user; then never through a symbolic link put in the script's place.)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_NOFOLLOW if _CONFINE.get("user") else 0))
        err = 0
    except OSError as e:
        fd, err = -1, e.errno
    importer = _get_importer_of(path, fd)
    if importer is not None:
        _zipapp[0] = True
        sys.path.insert(0, path)
        if fd >= 0:
            os.close(fd)
    elif not _SAFE_PATH:
        sys.path.insert(0, _real_folder(path, fd))
    return fd, err, importer


def _fresh_main():
    """In a warm process, once it has done what it does before its forks
    (its imports, and the collector's freeze: the runs' __main__ is
    tracked, as a fresh interpreter's is): a fresh __main__, which every
    child then has as it is, since nothing here runs code in it. (Made in
    each child, it cost each run ~10 pages that nothing else writes.)"""
    main = types.ModuleType("__main__")
    d = main.__dict__
    d.clear()
    for k, v in _MAIN_TEMPLATE:
        d[k] = {} if isinstance(v, dict) else v  # __annotations__: a fresh one
    sys.modules["__main__"] = main
    _main_dict[0] = id(d)


def _warnings_as_fresh():
    # In a child: what warnings cached before it was forked is stale.
    warnings._filters_mutated()


_AHEAD = [None]  # in a warm parent: the path of its script, whose runs all are


class _Ahead:
    """A run of a warm parent's script, made ready while its child waits
    for the job (_become_run_ahead): the script opened, its entries in
    sys.path and sys.path_importer_cache, sys.argv and what ps shows as for
    a run without arguments. A job finds it as it would have made it only
    if the path still names the file opened then (the same file, mode and
    owner, not a zip application, in the same real folder); otherwise it
    is undone and the job does it again."""

    __slots__ = ("path", "folder", "fd", "real", "cached", "shown")

    def holds(self):
        try:
            st = os.fstat(self.fd)
            now = os.stat(self.path, follow_symlinks=not _CONFINE.get("user"))
            if (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid) != \
                    (now.st_dev, now.st_ino, now.st_mode, now.st_uid, now.st_gid):
                return False
            if _zip_tail(self.fd, st.st_size):
                return False
            return _SAFE_PATH or os.readlink(_FD_LINK % self.fd) == self.real
        except OSError:
            return False

    def undo(self):
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        if not _SAFE_PATH:
            del sys.path[0]
        if self.cached is _Ahead:
            sys.path_importer_cache.pop(self.path, None)
        else:
            sys.path_importer_cache[self.path] = self.cached


def _become_run_ahead(slot=None):
    """In a child without the sandbox, before its job comes: what becoming
    a run does that does not depend on the job (a fresh interpreter's
    signals, the run's stdio as buffered), and in a warm
    parent's child what the job of its script needs (see _Ahead). None
    under the sandbox (in a slot): the job does it all there, in the run's
    view."""
    if slot is not None:
        return None
    _fresh_signals()
    _STDIO_AHEAD[:] = [None]
    _run_stdio(0)
    _warnings_as_fresh()
    ahead = _Ahead()
    ahead.path, ahead.folder, ahead.fd, ahead.real, ahead.shown = _AHEAD[0], _RUN_ENV[0], -1, None, False
    if ahead.path is None or _PYTHONPATH_REL:
        return ahead
    try:
        fd = os.open(ahead.path, os.O_RDONLY | os.O_CLOEXEC | (os.O_NOFOLLOW if _CONFINE.get("user") else 0))
    except OSError:
        return ahead  # the job opens it, and says why it cannot
    try:
        if _zip_tail(fd, os.fstat(fd).st_size):
            raise OSError
        if not _SAFE_PATH:
            ahead.real = os.readlink(_FD_LINK % fd)
            if not ahead.real.startswith("/") or ahead.real.endswith(" (deleted)"):
                raise OSError
    except OSError:
        os.close(fd)
        return ahead
    ahead.fd = fd
    cache = sys.path_importer_cache
    ahead.cached = cache.get(ahead.path, _Ahead)
    cache[ahead.path] = None
    if not _SAFE_PATH:
        sys.path.insert(0, ahead.real.rpartition("/")[0] or "/")
    sys.argv = [ahead.path]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = [_PYTHON, ahead.path]
    ahead.shown = _show_as_run(_cmdline(ahead.path, ()), _RUN_ENV[1])
    return ahead


def _zip_tail(fd, size):
    # Whether the file's last 64 KiB hold a zip archive's end of central
    # directory record.
    n = min(size, (1 << 16) + 22)
    return b"PK\x05\x06" in os.pread(fd, n, size - n)


def _get_importer_of(path, fd):
    """PyImport_GetImporter(path), which a fresh interpreter calls on its
    script. Only a zip archive (its end of central directory record within
    the last 64 KiB) can have one: for other files, what it would store."""
    zipped = True  # a file that cannot be read: let CPython look and say
    if fd >= 0:
        try:
            zipped = _zip_tail(fd, os.fstat(fd).st_size)
        except OSError:
            pass
    if zipped:
        return _get_importer(path)
    sys.path_importer_cache[path] = None
    return None


def _real_folder(path, fd):
    """The folder a fresh interpreter puts first on sys.path: that of the
    script's real path, which the kernel knows for the open file."""
    if fd >= 0:
        try:
            real = os.readlink(_FD_LINK % fd)
            if real.startswith("/") and not real.endswith(" (deleted)"):
                return real.rpartition("/")[0] or "/"
        except OSError:
            pass
    return os.path.dirname(os.path.realpath(path))


def _resolve_pythonpath(folder):
    # The relative PYTHONPATH entries, resolved against the run's folder
    # instead of this process's, in place, duplicates dropped as site does;
    # their path importer cache entries with them.
    swap = {}
    for here, entry in _PYTHONPATH_REL:
        there = os.path.normpath(os.path.join(folder, entry))
        if here != there:
            swap[here] = there
    if not swap:
        return
    seen, path = set(), []
    for p in sys.path:
        p = swap.get(p, p)
        if p not in seen:
            seen.add(p)
            path.append(p)
    sys.path[:] = path
    cache = sys.path_importer_cache
    # A fresh interpreter looked its entries up at its start.
    found = {there: _get_importer(there) for here, there in swap.items() if here in cache}
    items = []
    for k, v in list(cache.items()):
        if k in swap:
            items.append((swap[k], found[swap[k]]))
        elif k not in found:
            items.append((k, v))
    cache.clear()
    cache.update(items)


def _user_site_as_run_user():
    # site puts the user's site-packages folder on sys.path where it finds
    # it: a run user that cannot see it does not have it.
    site = sys.modules.get("site")
    user_site = getattr(site, "USER_SITE", None)
    if user_site and user_site in sys.path and not os.path.isdir(user_site):
        sys.path.remove(user_site)
        sys.path_importer_cache.pop(user_site, None)


# --------------------------------------------------------- what ps shows
#
# /proc/self/cmdline and /proc/self/environ (ps, pgrep, a script re-executing
# itself) are the warm interpreter's in a child: its bootstrap, and its
# environment without PWD. prctl(PR_SET_MM_MAP), which needs no privilege,
# points them at the run's own: `python3 /abs/script.py args` and the
# environment a spawned run gets.


class _MMMap(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "start_code", "end_code", "start_data", "end_data", "start_brk", "brk",
        "start_stack", "arg_start", "arg_end", "env_start", "env_end", "auxv")] + [
        ("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32)]


_PR_SET_MM = 35
_PR_SET_MM_MAP = 14
_sbrk = _libc.sbrk
_sbrk.argtypes = [ctypes.c_long]
_sbrk.restype = ctypes.c_void_p
_shown = []  # what the kernel now shows, alive


def _memory_map():
    # This process's code, data and stack bounds (a child has the same):
    # what PR_SET_MM_MAP must be given back as they are.
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()  # from field 3 on
        return _MMMap(*(int(fields[n - 3]) for n in (26, 27, 45, 46, 47)), 0, int(fields[28 - 3]),
                      0, 0, 0, 0, 0, 0, 0xFFFFFFFF)
    except (OSError, ValueError, IndexError):
        return None


_MEMORY_MAP = _memory_map()


def _show_as_run(args, env):
    """Points /proc/self/cmdline at args and /proc/self/environ at env (each
    NUL-terminated strings, bytes objects kept alive here, whose own memory
    the kernel reads)."""
    m = _MEMORY_MAP
    if m is None:
        return False
    _shown.append(args)
    _shown.append(env)
    m.brk = _sbrk(0) or 0
    m.arg_start = id(args) + _BYTES_DATA
    m.arg_end = m.arg_start + len(args)
    m.env_start = id(env) + _BYTES_DATA
    m.env_end = m.env_start + len(env)
    return _CONF.prctl(_PR_SET_MM, _PR_SET_MM_MAP, ctypes.addressof(m), ctypes.sizeof(m)) == 0


def _bytes_data_offset():
    # Where a bytes object's data starts (CPython's PyBytesObject): checked.
    probe = b"scripthost"
    off = bytes.__basicsize__ - 1
    return off if ctypes.string_at(id(probe) + off, len(probe) + 1) == probe + b"\0" else None


_BYTES_DATA = _bytes_data_offset()
if _BYTES_DATA is None:
    _MEMORY_MAP = None
_FS_ENCODING = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
_PYTHON_B = os.fsencode(_PYTHON) + b"\0"
_FD_LINK = "/proc/self/fd/%d"


_post = collections.deque()  # in a child: what running the script returned, then sys.last_type
_zipapp = [False]


def _child(chan, slot):
    try:
        learn = [_LEARN[0]] if _LEARN[0] >= 0 else []
        _prepare_child(chan, list(_SANDBOX.child_fds(slot.fds) if slot else ()) + learn)
        if slot:
            # The run sandbox: into the slot's namespaces ahead of the job.
            _SANDBOX.enter_slot_ahead(slot.fds, _SANDBOX_CFG)
        ahead = _become_run_ahead(slot)
        job = _await_job(chan, ([ahead.fd] if ahead is not None and ahead.fd >= 0 else []) + learn, slot)
        if slot:
            _SANDBOX.enter_run(_SANDBOX_CFG, job["dir"], job["placed"], slot.placed and slot.placed[0])
        fp = _become_run(job, ahead)
        if not job.get("canary"):
            _confine()
            _user_site_as_run_user()
            if slot:
                _CONF.lock_down()
    except BaseException as e:
        _CONF.fail(e)
    if fp is None and not _zipapp[0]:
        yield functools.partial(_py_exit, 2)
    if _REC_GAP:
        _counter().value += _REC_GAP
    if _zipapp[0]:
        run = functools.partial(_run_string, _RUN_ZIPAPP, None)
    else:
        run = functools.partial(_run_file, fp, os.fsencode(job["path"]), 1, None)
    step = _run_step(run, _post, _after_script(_post))
    _fresh_gc_counts()
    yield step


def _fresh_gc_counts():
    """Sets the garbage collector's counts to those at the top of a fresh
    interpreter's main module (_GC_AT_TOP), so that its automatic
    collections come at the same points of every run of a script, and a
    cycle's __del__ prints where it prints in `python script.py`. A child
    inherits the warm interpreter's counts, which vary with what it did
    before the fork. (The youngest count a script finds is a few dozen
    above a fresh interpreter's: the objects the bootstrap's lines made
    before noting it, and those the child makes between here and the
    script; TestForkGCCountsAsFresh.)"""
    if _GC_COUNTS is not None:
        _GC_COUNTS[2].value = _GC_AT_TOP[2]
        _GC_COUNTS[1].value = _GC_AT_TOP[1]
        _GC_COUNTS[0].value = _GC_AT_TOP[0]


_RUN_ZIPAPP = b'__import__("runpy")._run_module_as_main("__main__", False)\n'


# ------------------------------------------------ pages copied ahead of a job
#
# A child copies each page it shares with its warm process as it first
# writes it (a copy-on-write fault, about 2 us here): a hello.py run writes
# some 300 between its job's coming and its end. Which pages those are
# hardly depends on the script (the interpreter's own state, becoming a
# run, stdio, the shutdown), so the warm interpreter learns them once, from
# a run of a check script of its own (_learn_written_pages; its warm
# parents, forks of it, keep what it learned), and a child forked ahead
# that Go tells to copies them while it waits for its job (_copy_ahead, one
# madvise(MADV_POPULATE_WRITE) per range), off the run's path; it stops
# where it is when the job comes. Copying a page changes nothing a run can
# see but its memory use.

_AHEAD_MSG = b'{"op":"ahead"}'
_LEARN = [-1]  # in the learning child: where it writes the pages it wrote
_AHEAD_PAGES = [()]  # (start, bytes) of the ranges children copy ahead
_PAGE = mmap_module.PAGESIZE
_MADV_POPULATE_WRITE = 23  # Linux 5.14
_LEARN_MAX = 4096  # pages
_AHEAD_BATCH = 32  # pages copied between two looks for the job
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise.restype = ctypes.c_int
_LEARN_SCRIPT = (
    "import json\n"
    "import sys\n"
    "data = json.loads(sys.stdin.read() or '{}')\n"
    "print(json.dumps({'hello': data.get('name', 'world')}))\n"
)


def _copy_ahead(chan):
    """In a child forked ahead: copies the pages its warm process learned
    (_AHEAD_PAGES) until the job comes on chan or all are copied."""
    ranges = _AHEAD_PAGES[0]
    if not ranges:
        return
    watch = select.poll()
    watch.register(chan.fileno(), select.POLLIN)
    done = 0
    for start, size in ranges:
        # (A range that is no longer mapped, or not writable, is passed
        # over: the kernel says so and copies nothing.)
        _madvise(start, size, _MADV_POPULATE_WRITE)
        done += size
        if done >= _AHEAD_BATCH * _PAGE:
            done = 0
            if watch.poll(0):
                return


def _written_pages():
    """The pages of this process's private writable memory that are its
    own (present and mapped here alone: copied or new), as [start, bytes]
    ranges, at most _LEARN_MAX pages."""
    # (Called as the interpreter ends, with builtins back as CPython
    # started: no open.)
    fd = os.open("/proc/self/maps", os.O_RDONLY | os.O_CLOEXEC)
    try:
        maps = _read_all(fd).splitlines()
    finally:
        os.close(fd)
    ranges, n = [], 0
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for line in maps:
            f = line.split()
            if len(f) < 2 or f[1][:2] != b"rw" or f[1][3:4] != b"p" or len(f) > 5 and f[5] in _NO_COPY:
                continue
            lo, hi = (int(x, 16) for x in f[0].split(b"-"))
            for i, e in _pagemap_entries(fd, lo, hi):
                if e >> 63 and e >> 56 & 1:
                    at = lo + i * _PAGE
                    if ranges and ranges[-1][0] + ranges[-1][1] == at:
                        ranges[-1][1] += _PAGE
                    else:
                        ranges.append([at, _PAGE])
                    n += 1
                    if n >= _LEARN_MAX:
                        return ranges
    finally:
        os.close(fd)
    return ranges


_NO_COPY = (b"[vvar]", b"[vvar_vclock]", b"[vdso]", b"[vsyscall]")


def _pagemap_entries(fd, lo, hi):
    # (index, entry) of the pages from lo to hi, read 4096 at a time.
    first, end = lo // _PAGE, hi // _PAGE
    for at in range(first, end, 4096):
        n = min(4096, end - at)
        yield from enumerate(memoryview(os.pread(fd, n * 8, at * 8)).cast("Q"), at - first)


def _ahead_bytes():
    return sum(size for _, size in _AHEAD_PAGES[0])


def _read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _report_written_pages(fd):
    # The learning child's last act: its pages, on fd, as native uint64
    # pairs.
    try:
        data = array.array("Q", itertools.chain.from_iterable(_written_pages())).tobytes()
        while data:
            data = data[os.write(fd, data):]
    except Exception:
        pass  # nothing is learned


def _learn_written_pages():
    """In the warm interpreter, before it serves: runs the check script
    _LEARN_SCRIPT in a child, which reports the pages it wrote as it
    exits; the children forked from now on copy those ahead, and so do
    those of its warm parents, forks of it, which have those pages where
    it has them. (A warm parent learns nothing of its own: its child would
    end with the script's imports loaded, and their exit handlers and
    finalizers would run unconfined.) Nothing is learned where it fails,
    or where the kernel cannot copy ahead (the children then copy
    nothing ahead)."""
    _AHEAD_PAGES[0] = ()
    probe = ctypes.create_string_buffer(_PAGE * 2)
    start = (ctypes.addressof(probe) + _PAGE - 1) // _PAGE * _PAGE
    if _madvise(start, _PAGE, _MADV_POPULATE_WRITE) != 0:
        return  # (EINVAL: a kernel before 5.14)
    tmp = None
    try:
        tmp = _canary_folder()
        r, w = os.pipe()
    except OSError as e:
        _log("cannot learn what a run writes: %r" % (e,))
        if tmp is not None:
            _remove_checks(tmp, [])
        return
    try:
        try:
            pid = _start_check(tmp, "learn.py", _LEARN_SCRIPT, learn=w)
        finally:
            os.close(w)
        data = _read_all(r)
        _, status = os.waitpid(pid, 0)
        if status == 0 and len(data) % 16 == 0:
            pairs = array.array("Q", data)
            _AHEAD_PAGES[0] = tuple(zip(pairs[0::2], pairs[1::2]))
        else:
            _log("cannot learn what a run writes: the check script ended with wait status %d" % status)
    except OSError as e:
        _log("cannot learn what a run writes: %r" % (e,))
    finally:
        os.close(r)
        _remove_checks(tmp, ["learn.py"])


# --------------------------------------------------------------- the forker
#
# Children are forked ahead of their jobs (see _Server.spawn_idle): forking and
# what follows it (CPython's and the modules' after-fork work) happen while
# nothing waits, and a job only has to be handed over.

_go = _thread.allocate_lock()
_go.acquire()
_done = _thread.allocate_lock()
_done.acquire()
_slot = [None, None, None]  # a burst's channels for the children, the forks' results, their sandbox slots
_OWNED_SOCKETS = []  # every socket object of the warm interpreter
_socketpair = socket.socketpair


def _forker():
    _as_main_thread()
    while True:
        _go.acquire()
        mine = _fork_burst(_slot[0], _slot[1], _slot[2])
        if mine is not None:
            break
        _done.release()
    yield from _child(*mine)


def _fork_burst(chans, results, slots):
    # One child for each channel, back to back: between two forks this
    # process writes next to nothing. In a child, its channel and its slot.
    for i, chan in enumerate(chans):
        slot = slots[i] if slots else None
        try:
            # A sandboxed run's child is forked into its slot's pid
            # namespace.
            pid = _SANDBOX.fork_into(slot.fds["pidfd"]) if slot else os.fork()
        except BaseException as e:
            results.append(e)
            return None
        if pid == 0:
            return chan, slot
        results.append(pid)
    return None


def _flush_stdio():
    # Before a fork: nothing buffered here may be written again by the child.
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _fork(slot=None):
    """Forks a child that waits for its job; returns (pid, channel). With
    slot, the child is in that sandbox slot's pid namespace."""
    return _fork_many(1, slot and [slot])[0]


def _fork_many(n, slots=None, failed=None):
    """Forks n children that wait for their jobs (fewer if a fork fails:
    the error is raised if none was forked, else added to failed); returns
    [(pid, channel)]. With slots (n of them), each child is in its sandbox
    slot's pid namespace."""
    # (Nothing is buffered in this process's stdio, flushed before any
    # fork in _prepare_runs, which the children could write again.)
    pairs = [_socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(n)]
    theirs = [b for _, b in pairs]
    _OWNED_SOCKETS.extend(theirs)
    results = []
    _slot[:] = [theirs, results, slots]
    _go.release()
    _done.acquire()
    _slot[:] = [None, None, None]
    for b in theirs:
        _OWNED_SOCKETS.remove(b)
        b.close()
    forked = []
    for i, (a, _) in enumerate(pairs):
        if i < len(results) and not isinstance(results[i], BaseException):
            _OWNED_SOCKETS.append(a)
            forked.append((results[i], a))
        else:
            a.close()
    if not forked:
        raise results[-1]
    if failed is not None and len(forked) < n:
        failed.extend(e for e in results if isinstance(e, BaseException))
    return forked


_FDS_SPACE = socket.CMSG_SPACE(8 * 4)


def _recv(sock):
    data, anc, _, _ = sock.recvmsg(_MSG_MAX, _FDS_SPACE)
    fds = []
    for level, kind, body in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += memoryview(body)[:len(body) - len(body) % 4].cast("i").tolist()
    return data, fds


def _send(sock, data, fds=()):
    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else [])


# json.loads without its Python layers, for what Go's encoder wrote.
_scan_json = json.decoder.JSONDecoder().scan_once


def _read_memfd(fd):
    try:
        return _scan_json(os.pread(fd, os.fstat(fd).st_size, 0).decode(), 0)[0]
    finally:
        os.close(fd)


# ----------------------------------------------------------- the server loop


class _Server:
    def __init__(self, ctl):
        self.ctl = ctl
        self.poll = select.poll()
        self.poll.register(ctl.fileno(), select.POLLIN)
        # Go hands each child its job itself (see "hand-over" above): the
        # children are forked when Go asks, in bursts (after a fork every
        # page of this process is shared with the child, so that what this
        # loop writes next is copied; a burst shares that cost among its
        # children), and announced to Go as they are forked; this process
        # only forks them, reaps them and reports their ends (under the
        # sandbox, once their slots are empty).
        self.handed = {}  # pidfd -> pid: children announced to Go
        self.handed_pids = set()
        self.slot_of_handed = {}  # pidfd -> (slot, our end of the child's channel), under the sandbox
        self.parents = {}  # pidfd -> pid: warm parents forked from here
        # The run sandbox's slots (see _Slot).
        self.slots = []
        self.cleaning = {}  # slot's channel fd -> [slot, the run's end to report]: slots being emptied
        self.slot_by_pidfd = {}  # a slot's init's pidfd -> the slot
        self.watcher = None  # what watches the slots' views (sandbox.py's Watcher)
        self.changed = set()  # slots whose view changed since it was made fresh

    def send(self, msg, fds=()):
        _send(self.ctl, json.dumps(msg).encode(), fds)

    def serve(self):
        while True:
            for fd, _ in self.poll.poll():
                if fd == self.ctl.fileno():
                    if not self.control():
                        return
                elif fd in self.handed:
                    self.reap_handed(fd)
                elif fd in self.parents:
                    self.reap_parent(fd)
                elif fd in self.cleaning:
                    self.cleaned(fd)
                elif fd in self.slot_by_pidfd:
                    self.slot_ended(fd)

    def control(self):
        msg = None
        try:
            data, fds = _recv(self.ctl)
        except (ConnectionError, OSError):
            return False
        if not data and not fds:
            return False
        try:
            msg = json.loads(data)
            op = msg.get("op")
            if op == "fork":
                n = int(msg.get("n") or 1)
                try:
                    announced, why = self.spawn_idle(n)
                except Exception as e:  # (it announces none before it can fail)
                    announced, why = 0, e
                if announced < n:
                    # A burst cut short (a fork or a slot that failed):
                    # Go waits for no child that will not come.
                    self.send({"op": "forkfailed", "n": n - announced,
                               "error": "cannot fork: %s" % (why or "fewer children than asked for")})
            elif op == "kill":
                if msg.get("pid") in self.handed_pids:
                    _killpg(msg["pid"])
            elif op == "parent":
                given, fds = fds, []
                self.fork_parent(msg, given)
            else:
                _log("unknown request %r" % (op,))
        except Exception as e:
            _log("bad request: %r" % (e,))
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def spawn_idle(self, n=1):
        """Forks n children and announces each; returns how many were
        announced, and what cut the burst short, if anything did."""
        why = None
        if _SANDBOX is None:
            slots = None
        else:
            # Under the sandbox, each child in a free slot of its own.
            slots = []
            try:
                for _ in range(n):
                    slots.append(self.free_slot(taken=slots))
            except Exception as e:
                if not slots:
                    raise
                why = e
        failed = []
        forked = _fork_many(len(slots) if slots else n, slots, failed)
        why = why or (failed and failed[-1])
        # Every child is known here before any is announced: one that Go
        # can no longer be told of (it is gone) is still killed and reaped
        # by stop (an unreaped child in a slot would keep its init, and
        # stop, waiting).
        new = []
        for i, (pid, chan) in enumerate(forked):
            try:
                os.setpgid(pid, pid)  # also done by the child: whichever runs first
            except OSError:
                pass
            try:
                pidfd = os.pidfd_open(pid)
                try:
                    self.poll.register(pidfd, select.POLLIN)
                except BaseException:
                    os.close(pidfd)
                    raise
            except Exception as e:
                # Go is told of none of the rest: they end here.
                why = e
                for pid, chan in forked[i:]:
                    self.drop_unannounced(pid, chan)
                break
            slot = slots[i] if slots else None
            # Go's from now: its channel and a pidfd of it (and, in a slot,
            # the slot's pids.current: Go answers the run as its process
            # exits when nothing else of it is left).
            self.handed[pidfd] = pid
            self.handed_pids.add(pid)
            fds = [chan.fileno(), pidfd]
            if slot is not None:
                # The slot is the child's until its end; the channel's
                # other end stays here, for the run's folder (see
                # _await_job).
                slot.idle = pidfd
                self.slot_of_handed[pidfd] = (slot, chan)
                if slot.fds["pids"] >= 0:
                    fds.append(slot.fds["pids"])
            new.append((pid, chan, fds, slot))
        announced, lost = 0, None
        for pid, chan, fds, slot in new:
            try:
                if lost is None:
                    _send(self.ctl, b'{"op":"idle","pid":%d}' % pid, fds)
                    announced += 1
            except OSError as e:
                lost = e  # Go is gone: the rest are not announced either
            finally:
                if slot is None:
                    self.close_chan(chan)
        return announced, lost or why

    def drop_unannounced(self, pid, chan):
        """Kills and reaps a child forked for Go that Go is not told of."""
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        self.close_chan(chan)

    def close_chan(self, chan):
        if chan in _OWNED_SOCKETS:
            _OWNED_SOCKETS.remove(chan)
        chan.close()

    def reap_handed(self, pidfd):
        # A child announced to Go ended: a run, or one that never had a job.
        pid = self.handed.pop(pidfd)
        self.handed_pids.discard(pid)
        self.poll.unregister(pidfd)
        os.close(pidfd)
        in_slot = self.slot_of_handed.pop(pidfd, None)
        # The leader has exited but is not reaped: its pid, and so its group
        # id, cannot name anything else yet. Kill what is left of the run
        # (Go reaps it).
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        _killpg(pid)
        _, status = os.waitpid(pid, 0)
        end = b'{"op":"exited","pid":%d,"status":%d}' % (pid, status)
        if in_slot is None:
            _send(self.ctl, end)
            return
        slot, chan = in_slot
        # The run's folder, if its child said it (its only message there).
        try:
            said = chan.recv(_MSG_MAX, socket.MSG_DONTWAIT)
        except OSError:
            said = b""
        self.close_chan(chan)
        slot.idle, slot.rid = None, pid
        slot.folder = (os.fsdecode(said), False) if said else None
        self.clean_slot(slot, end)

    def fork_parent(self, msg, fds):
        if len(fds) != 2:
            raise ValueError("expected 2 fds, got %d" % len(fds))
        ctl_fd, code_fd = fds
        try:
            with open(code_fd, "rb", closefd=False) as f:
                f.seek(0)
                code = f.read()
            _flush_stdio()
            with warnings.catch_warnings(module=warnings):  # (hidden from sys.modules)
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with a thread: ours is idle
                pid = os.fork()
            if pid == 0:
                try:
                    _become_parent(ctl_fd, msg.get("dir") or "/", code, msg.get("path"))
                except BaseException as e:
                    _log("warm parent: %r" % (e,))
                finally:
                    os._exit(1)
            pidfd = os.pidfd_open(pid)
            self.parents[pidfd] = pid
            self.poll.register(pidfd, select.POLLIN)
        finally:
            os.close(ctl_fd)
            os.close(code_fd)

    def reap_parent(self, pidfd):
        pid = self.parents.pop(pidfd)
        self.poll.unregister(pidfd)
        os.close(pidfd)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    # ------------------------------------------------ the sandbox's slots

    def free_slot(self, taken=()):
        """A slot with no run and no child waiting in it (nor in taken); a
        new one if none."""
        for slot in list(self.slots):
            if (slot.rid is None and slot.idle is None and slot.chan.fileno() not in self.cleaning
                    and slot not in taken):
                if slot.alive():
                    return slot
                self.drop_slot(slot)  # its init was killed from outside
        slot = _Slot.start()
        self.slots.append(slot)
        self.slot_by_pidfd[slot.pidfd] = slot
        self.poll.register(slot.pidfd, select.POLLIN)
        self.watch(slot)
        return slot

    def watch(self, slot):
        """Watches the view of a slot just made fresh."""
        if self.watcher is None:
            self.watcher = _SANDBOX.Watcher()
        folder = slot.placed[0] if slot.placed else None
        slot.watched = self.watcher.watch(slot, slot.init, _SANDBOX.view_dirs(_SANDBOX_CFG, folder))

    def note_changes(self):
        keys, lost = self.watcher.changed()
        self.changed |= set(self.slots) if lost else keys

    def slot_ended(self, pidfd):
        """A slot's init ended (killed from outside): a free slot is dropped
        now; a busy one once its run has ended (its channel ends too)."""
        slot = self.slot_by_pidfd.pop(pidfd)
        self.poll.unregister(pidfd)
        if slot.rid is None and slot.idle is None:
            self.drop_slot(slot)

    def clean_slot(self, slot, end):
        """A run's own process ended: when no process of the run is left,
        its end (the message end) is reported now, else once its slot's
        init has killed the rest ("clean"). With nothing left and its view
        as it was made fresh (no change seen), the slot takes the next run
        at once; else once its init has made it fresh ("fresh"), with the
        run's folder in place if the slot's /tmp, /dev/shm or HOME covers
        it. A slot whose IPC namespace the run left anything in is ended."""
        gone = _SANDBOX.run_gone(slot.fds)
        if gone and not _SANDBOX.ipc_empty(slot.fds):
            slot.rid = slot.folder = None
            _send(self.ctl, end)
            self.drop_slot(slot)
            return
        (folder, placed), slot.folder = slot.folder or (None, False), None
        fds = []
        if folder and not placed and _SANDBOX.covers(_SANDBOX_CFG, folder):
            try:
                tree, ident = _SANDBOX.clone_folder(folder)
            except OSError:
                pass
            else:
                fds.append(tree)
                slot.pending = (folder,) + ident
        if gone and slot.watched:
            self.note_changes()
            if not fds and slot not in self.changed:
                slot.rid = None
                _send(self.ctl, end)
                return
        msg = b"kill" if not gone else b"refresh" if slot.watched else b"check"
        if fds:
            msg += b"\0" + os.fsencode(folder)
        try:
            _send(slot.chan, msg, fds)
        except OSError:
            self.drop_slot(slot)
            _send(self.ctl, end)
            return
        finally:
            for fd in fds:
                os.close(fd)
        if gone:
            _send(self.ctl, end)
            end = None
        self.cleaning[slot.chan.fileno()] = [slot, end]
        self.poll.register(slot.chan.fileno(), select.POLLIN)

    def cleaned(self, fd):
        entry = self.cleaning[fd]
        slot, end = entry
        try:
            reply = json.loads(slot.chan.recv(256) or b"{}")
        except (OSError, ValueError):
            reply = {}
        if end is not None:
            # "clean", "fresh" (which comes without "clean" when the slot
            # needed nothing more), or the slot's end.
            _send(self.ctl, end)
            entry[1] = None
        if reply.get("clean"):
            return  # "fresh" comes next
        del self.cleaning[fd]
        self.poll.unregister(fd)
        if reply.get("fresh") and _SANDBOX.ipc_empty(slot.fds):
            slot.rid = None
            if slot.pending is not None:
                slot.placed, slot.pending = slot.pending, None
            if self.watcher is not None:
                # What the run changed came before the slot was made fresh.
                self.note_changes()
                self.changed.discard(slot)
                if reply.get("new"):
                    self.watch(slot)
        else:
            self.drop_slot(slot)

    def drop_slot(self, slot):
        if self.watcher is not None:
            self.watcher.unwatch(slot)
            self.changed.discard(slot)
        if slot in self.slots:
            self.slots.remove(slot)
        if self.slot_by_pidfd.pop(slot.pidfd, None) is not None:
            self.poll.unregister(slot.pidfd)
        slot.stop()

    def stop(self):
        pids = list(self.handed_pids) + list(self.parents.values())
        for pid in self.handed_pids:
            _killpg(pid)
        for pid in self.parents.values():
            # A warm parent is in this process's group, not one of its own.
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # The slots' inits last: an init's end waits until every process of
        # its namespace is reaped, the children of this process included.
        for slot in self.slots:
            slot.kill()
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        for slot in self.slots:
            slot.stop()


class _Slot:
    """A sandbox slot: the init (pid 1) of a pid namespace, with the mount
    and network namespaces it made (sandbox.py's prepare_slot). One run at a
    time is forked into it; between runs the init kills whatever the last
    one left. Slots are made as runs need them and last as long as this
    process (whose end kills their inits, and so everything in them)."""

    __slots__ = ("init", "pidfd", "chan", "idle", "rid", "cgroups", "fds", "folder", "placed", "pending", "watched")

    @classmethod
    def start(cls):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        _flush_stdio()
        pid = _SANDBOX.fork_init()
        if pid == 0:
            try:
                _CONF.die_with_parent((0,), 1)  # its parent is outside its namespace
                for sock in _OWNED_SOCKETS + [ours]:
                    sock.detach()
                _CONF.close_fds([theirs.fileno()])
                _SANDBOX.slot_main(_SANDBOX_CFG, theirs)
            finally:
                os._exit(1)
        theirs.close()
        slot = cls()
        slot.init, slot.chan, slot.idle, slot.rid, slot.cgroups = pid, ours, None, None, []
        slot.fds = slot.folder = slot.placed = slot.pending = None
        slot.watched = False
        slot.pidfd = os.pidfd_open(pid)
        try:
            slot.cgroups = _SANDBOX.make_slot_cgroups(_SANDBOX_CFG, pid)
        except BaseException as e:
            slot.stop()
            raise OSError("cannot make a sandbox slot's cgroups: %s" % e)
        try:
            reply = json.loads(ours.recv(4096) or b"{}")
        except (OSError, ValueError):
            reply = {}
        if not reply.get("ready"):
            slot.stop()
            raise OSError("cannot set up a sandbox slot: %s" % reply.get("error", "its init ended"))
        try:
            slot.fds = _SANDBOX.slot_fds(slot.pidfd, slot.cgroups, _SANDBOX_CFG)
        except OSError as e:
            slot.stop()
            raise OSError("cannot open a sandbox slot's namespaces and cgroups: %s" % e)
        return slot

    def has(self, folder):
        """Whether the slot's init has folder in place, as it is now."""
        if self.placed is None or self.placed[0] != folder:
            return False
        try:
            st = os.stat(folder)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.placed[1:]

    def alive(self):
        p = select.poll()
        p.register(self.pidfd, select.POLLIN)
        return not p.poll(0)

    def kill(self):
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except OSError:
            pass

    def stop(self):
        """Kills and reaps the init; its namespace must hold no child of
        this process that is not reaped already (see _Server.stop)."""
        self.kill()
        try:
            os.waitpid(self.init, 0)
        except OSError:
            pass
        os.close(self.pidfd)
        self.chan.close()
        if self.fds is not None:
            _SANDBOX.close_slot_fds(self.fds)
            self.fds = None
        _SANDBOX.remove_cgroups(self.cgroups)


def _canary():
    """Runs a few scripts whose ends are known through the whole child path;
    returns what went wrong, or None."""
    checks = [
        ("pass\n", 0),
        ("import sys\nsys.exit(3)\n", 3 << 8),
        ("raise ValueError\n", 1 << 8),
        ("raise KeyboardInterrupt\n", signal.SIGINT),
    ]
    # mkdtemp, not TemporaryDirectory: that registers an atexit finalizer,
    # which every child would inherit and run.
    tmp = _canary_folder()
    names = ["canary%d.py" % i for i in range(len(checks))]
    try:
        for name, (code, want) in zip(names, checks):
            _, status = os.waitpid(_start_check(tmp, name, code), 0)
            if status != want:
                return "a check script %r ended with wait status %d, not %d" % (code, status, want)
    finally:
        _remove_checks(tmp, names)
    return None


def _start_check(tmp, name, code, learn=-1):
    """Starts the check script code, saved as name in the folder tmp, in a
    child with its stdio on /dev/null (and learn as _LEARN, when given);
    returns its pid."""
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(code)
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
    try:
        _LEARN[0] = learn
        try:
            pid, chan = _fork()
        finally:
            _LEARN[0] = -1
        try:
            _send(chan, json.dumps({"path": path, "dir": tmp, "args": [], "canary": True}).encode(), fds)
        finally:
            _OWNED_SOCKETS.remove(chan)
            chan.close()
    finally:
        for fd in fds:
            os.close(fd)
    return pid


def _remove_checks(tmp, names):
    for name in names:
        try:
            os.unlink(os.path.join(tmp, name))
        except OSError:
            pass
    try:
        os.rmdir(tmp)
    except OSError:
        pass


def _canary_folder():
    # As tempfile.mkdtemp would make it, without importing tempfile here.
    err = None
    for base in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp"):
        if not base:
            continue
        path = os.path.join(base, "scripthost-canary-%s" % os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except OSError as e:
            err = e
    raise err


def _room_to_run():
    """A run starts with this process's address space: the memory limit
    must leave it room to run anything at all."""
    for res, soft, _ in _CONFINE["rlimits"]:
        if res != resource.RLIMIT_AS:
            continue
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        if size + (32 << 20) > soft:
            return ("the memory limit (%d MiB) leaves no room to run: the warm interpreter, "
                    "whose address space every run starts with, has %d MiB" % (soft >> 20, size >> 20))
    return None


def _job(msg):
    # Arguments are decoded as CPython decodes its command line.
    if "bpath" in msg:
        path = os.fsdecode(binascii.a2b_base64(msg["bpath"]))
        folder = os.fsdecode(binascii.a2b_base64(msg["bdir"]))
    else:
        path, folder = msg["path"], msg["dir"]
    if "bargs" in msg:
        args = [os.fsdecode(binascii.a2b_base64(a)) for a in msg["bargs"]]
    else:
        args = msg.get("args") or []
    return {"path": path, "dir": folder, "args": args, "unbuffered": bool(msg.get("unbuffered"))}


def _killpg(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# ------------------------------------------------------------ warm parents
#
# A warm parent is a fork of this server, from its main thread, that has
# then imported what one script imports (found in its code: the absolute
# imports of its top level, outside functions and classes), and serves that
# script's runs as this server does: its children have those modules in
# sys.modules already. Modules of the script's own folder are never
# imported here (they change, and the folder is not on this sys.path). An
# import that writes anything (to fd 1 or 2) would lose that output from
# every run: such a script is refused a warm parent.


def _imports_of(code, folder):
    """The modules a script imports at its top level, in order, less
    relative imports and modules of its own folder."""
    had_ast = "_ast" in sys.modules
    try:
        tree = compile(code, "<script>", "exec", 0x400)  # PyCF_ONLY_AST
    except (SyntaxError, ValueError):
        return []
    finally:
        if not had_ast:
            sys.modules.pop("_ast", None)
    names = []
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        kind = type(node).__name__
        if kind == "Import":
            names += [a.name for a in node.names]
        elif kind == "ImportFrom":
            if node.level == 0 and node.module:
                names.append(node.module)
                names += [node.module + "." + a.name for a in node.names if a.name != "*"]
        elif kind in ("If", "Try", "TryStar", "With", "For", "While"):
            for field in ("body", "orelse", "finalbody"):
                todo += getattr(node, field, None) or []
            for h in getattr(node, "handlers", None) or []:
                todo += h.body
    out = []
    for name in names:
        top = name.split(".")[0]
        if name in out or top in ("__main__", "__future__") or _in_folder(top, folder):
            continue
        out.append(name)
    return out


def _in_folder(top, folder):
    try:
        entries = os.listdir(folder)
    except OSError:
        return False
    return any(e == top or e.split(".")[0] == top for e in entries)


def _warm_imports(names):
    """Imports names; returns those that are modules now. fds 1 and 2 go to
    a memfd meanwhile: anything written there is reported (None)."""
    sink = os.memfd_create("scripthost-imports", os.MFD_CLOEXEC)
    saved = [os.dup(1), os.dup(2)]
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    done = []
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:
                continue
            done.append(name)
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        wrote = os.fstat(sink).st_size
        os.close(sink)
    return None if wrote else done


_FILLED = []  # what fills the free blocks of the allocator's pools (see _fill_pools)
_FILL_MAX = 4 << 20  # at most this many bytes of it


def _pool_room():
    """{block size: free blocks} of CPython's small-object allocator, in the
    pools it has in use (sys._debugmallocstats, which writes to fd 2), or
    {} when it cannot be read."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}
    sink = os.memfd_create("scripthost-mallocstats", os.MFD_CLOEXEC)
    saved = os.dup(2)
    try:
        _flush_stdio()
        os.dup2(sink, 2)
        try:
            stats()
        finally:
            os.dup2(saved, 2)
        text = os.pread(sink, os.fstat(sink).st_size, 0).decode("ascii", "replace")
    finally:
        os.close(saved)
        os.close(sink)
    room = {}
    for line in text.splitlines():
        f = line.split()
        # class, size, pools, blocks in use, free blocks
        if len(f) == 5 and all(x.isdigit() for x in f):
            room[int(f[1])] = int(f[4])
    return room


def _fill_pools():
    """Before a fork: fills the free blocks of the small-object allocator's
    pools in use here with objects that stay. A child's allocations then go
    to fresh pools, side by side, instead of to the holes left all over the
    pages it shares with this process, each of which the kernel copies once
    written (measured: the same work in a child copies a fifth to a third
    fewer pages; a whole run 3-5% fewer). It costs what the holes hold and
    the pools' untouched ends (here ~0.6 MiB of a warm parent)."""
    try:
        room = _pool_room()
    except (OSError, ValueError):
        return
    sizes = sorted(room)

    def block(nbytes):  # the size of the blocks an object of nbytes takes
        return next((c for c in sizes if c >= nbytes), None)

    # Objects the collector does not track: bytes, and for the smallest
    # blocks an object() and a float.
    base = sys.getsizeof(b"")
    small = {block(sys.getsizeof(object())): object, block(sys.getsizeof(0.5)): functools.partial(float, "0.5")}
    budget = _FILL_MAX
    for size in sizes:
        n = room[size]
        make = functools.partial(bytes, size - base) if size > base else small.get(size)
        if n <= 0 or n * size > budget or make is None or block(sys.getsizeof(make())) != size:
            continue
        _FILLED.extend([make() for _ in range(n)])
        budget -= n * size


def _private_memory():
    total = 0
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Private_Clean", "Private_Dirty"):
                    total += int(rest.split()[0]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return total


def _as_run_user(fn, *args):
    """Calls fn with the run user's effective ids and groups, when there is
    one: what the script's imports do when imported, they do as the run
    user would (files they write or read, processes they start). The
    saved ids stay those of this process, which takes them back after."""
    user = _CONFINE.get("user")
    if not user or os.geteuid() != 0:
        return fn(*args)
    groups, egid = os.getgroups(), os.getegid()
    os.setgroups(user.get("groups") or [])
    os.setresgid(-1, user["gid"], -1)
    os.setresuid(-1, user["uid"], -1)
    try:
        return fn(*args)
    finally:
        os.setresuid(-1, 0, -1)
        os.setresgid(-1, egid, -1)
        os.setgroups(groups)


def _run_user_reads_stdlib():
    """Whether the run user can import the standard library (not so with an
    interpreter under /root): if not, the base preloads it after all."""
    user = _CONFINE.get("user")
    if not user or os.geteuid() != 0:
        return True
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            _CONF.become_user(user)
            ok = os.access(os.__file__, os.R_OK) and os.access(os.path.dirname(os.__file__), os.R_OK | os.X_OK)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return status == 0


def _reset_tempfile():
    # What the imports may have set in tempfile (the folder it found, its
    # name sequence): a fresh import finds them unset.
    tf = sys.modules.get("tempfile")
    if tf is not None:
        tf.tempdir = None
        tf._name_sequence = None


def _enter_import_view(folder=None):
    """With the sandbox on, the host's view as a run has it, for imports
    whose modules runs are handed (sandbox.import_view): what a run could
    not import, or would find elsewhere, is not imported here from what it
    cannot see. Returns what leaves it."""
    if _SANDBOX is None:
        return _no_view
    return _SANDBOX.import_view(_SANDBOX_CFG, folder)


def _no_view():
    pass


def _become_parent(ctl_fd, folder, code, path=None):
    global _WARM_PID, _go, _done
    base = _WARM_PID
    _AHEAD[0] = path

    def die_with_base():
        # Taking other effective ids clears the parent-death signal: set
        # again after each change, so that this process never outlives the
        # warm interpreter (an import may hang).
        _CONF.die_with_parent((base,), 1)

    def imports(names):
        die_with_base()
        done = _warm_imports(names)
        if len(sys._current_frames()) > 1:
            # A Python thread an import started would not be in the runs
            # (only the forking thread is), and it would go back to this
            # process's ids with it: the runs import it themselves, as the
            # run user. (Threads of C code alone, such as a BLAS library's
            # pool, run no Python code and are left be.)
            server.send({"op": "fatal", "error": "importing what the script imports starts a thread"})
            os._exit(1)
        return done

    die_with_base()
    _WARM_PID = os.getpid()
    # Nothing of the base server's is ours: its sockets, its children's
    # pidfds and channels. The forker thread did not survive the fork.
    for sock in _OWNED_SOCKETS:
        sock.detach()
    del _OWNED_SOCKETS[:]
    _CONF.close_fds([ctl_fd])
    ctl = socket.socket(fileno=ctl_fd)
    ctl.setblocking(True)
    _OWNED_SOCKETS.append(ctl)
    # Go learns this process before anything can hold it up. (Once Go has
    # given up on it, the send fails and this process exits.)
    me = os.pidfd_open(os.getpid())
    _send(ctl, json.dumps({"op": "forked", "pid": os.getpid()}).encode(), [me])
    os.close(me)
    _go = _thread.allocate_lock()
    _go.acquire()
    _done = _thread.allocate_lock()
    _done.acquire()
    _slot[0] = _slot[1] = _slot[2] = None
    if _SANDBOX is not None:
        _SANDBOX.forget_fds()  # the base server's
    server = _Server(ctl)
    names = _imports_of(code, folder)
    try:
        leave = _enter_import_view(folder)
        try:
            _record_imports(True)
            try:
                imported = _as_run_user(imports, names)
            finally:
                _record_imports(False)
        finally:
            leave()
    except OSError as e:
        server.send({"op": "fatal", "error": "importing what the script imports as a run sees: %s" % (e,)})
        os._exit(1)
    die_with_base()
    if imported is None:
        server.send({"op": "fatal", "error": "importing what the script imports writes output"})
        os._exit(1)
    problem = _room_to_run()
    if problem:
        server.send({"op": "fatal", "error": problem})
        os._exit(1)
    # As in the base server: what was imported is handed over to the runs
    # that import it, and only then.
    _reset_tempfile()
    _hide_imports()
    _prepare_runs(folder)
    _SYS_DICTS[:] = [(dict(sys.__dict__), sys.__dict__)]
    gc.collect()
    _libc.malloc_trim(0)
    gc.freeze()
    _fill_pools()
    # (The sentinels are the base server's; its __main__ was there while
    # the script's imports ran.)
    _fresh_main()
    # What is ours alone now, before a child shares it: what ending this
    # process frees.
    memory = _private_memory()
    _chain_thread(_forker(), growing=True)
    server.send({"op": "ready", "pid": os.getpid(), "imports": imported, "memory": memory,
                 "ahead": _ahead_bytes()})
    try:
        server.serve()
    except BaseException as e:
        _log("warm parent stopping: %r" % (e,))
    finally:
        server.stop()
        os._exit(0)


def _main():
    ctl = socket.socket(fileno=_CTL_FD)
    ctl.setblocking(True)
    _OWNED_SOCKETS.append(ctl)
    server = _Server(ctl)
    try:
        stdlib = _OPTIONS.get("stdlib", True) or not _run_user_reads_stdlib()
        leave = _enter_import_view()
        try:
            for name in (_STDLIB if stdlib else ()):
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass
            for name in _PRELOAD:
                importlib.import_module(name)
            if _SANDBOX is not None:
                _note_unseen()
        finally:
            leave()
    except BaseException as e:
        server.send({"op": "fatal", "error": "preload: %s: %s" % (type(e).__name__, e)})
        os._exit(1)
    finally:
        _record_imports(False)
    global _REC_GAP, _WARM_PATH
    # What a main module's top level has: the bootstrap's copy of its thread
    # state, taken at the top level of `python -c`.
    if _REC_OFF is not None and len(_TSTATE_AT_TOP) >= _REC_OFF + 4:
        top = int.from_bytes(_TSTATE_AT_TOP[_REC_OFF:_REC_OFF + 4], sys.byteorder, signed=True)
        _REC_GAP = _recursion_gap(top)
    _hide_imports()
    _prepare_runs()
    _SYS_DICTS.append((dict(sys.__dict__), sys.__dict__))
    # (Relative PYTHONPATH entries are a run's own: see _resolve_pythonpath.)
    relative = {here for here, _ in _PYTHONPATH_REL}
    _WARM_PATH_ORDER[0] = tuple(p for p in sys.path if isinstance(p, str) and p not in relative)
    _WARM_PATH = frozenset(_WARM_PATH_ORDER[0])
    _WARM_FINDERS[:] = [list(sys.meta_path), list(sys.path_hooks)]
    _bootstrap._load_unlocked = _served_load_unlocked
    _bootstrap._find_and_load = _served_find_and_load
    _reserve_finalizer_slots()
    _make_finalizers(_post)
    gc.collect()
    _libc.malloc_trim(0)
    gc.freeze()
    _fill_pools()
    # The sentinels, in this process's sys.modules for every child to
    # copy (and for a warm parent's), and a fresh __main__.
    _arm_finalizers()
    _fresh_main()
    _chain_thread(_forker(), growing=True)
    problem = _canary()
    _hide_imports()
    if problem:
        server.send({"op": "fatal", "error": "fork mode does not work with Python %s: %s"
                     % (sys.version.split()[0], problem)})
        os._exit(1)
    _learn_written_pages()
    problem = _room_to_run()
    if problem:
        server.send({"op": "fatal", "error": problem})
        os._exit(1)
    # What the interpreter loaded before any code of ours (sitecustomize, a
    # .pth file's imports) stays in every child: Go warns of those of them
    # that the runs' view finds elsewhere.
    unseen = sorted(n for n in _UNSEEN if n in _STARTUP[0])
    server.send({"op": "ready", "pid": os.getpid(), "ahead": _ahead_bytes(), "unseen": unseen})
    try:
        server.serve()
    except BaseException as e:
        _log("stopping: %r" % (e,))
    finally:
        server.stop()
        os._exit(0)


_REC_GAP = 0
