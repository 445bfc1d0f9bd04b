# Signal dispositions, mask and threads of a fresh interpreter.
import signal
import threading

for name in ("SIGINT", "SIGPIPE", "SIGTERM", "SIGCHLD", "SIGHUP", "SIGXFSZ", "SIGUSR1", "SIGALRM"):
    h = signal.getsignal(getattr(signal, name))
    print(name, getattr(h, "__name__", h))
print("blocked:", signal.pthread_sigmask(signal.SIG_BLOCK, []))
print(threading.current_thread().name, threading.current_thread() is threading.main_thread())
print(threading.active_count(), [t.name for t in threading.enumerate()])
signal.signal(signal.SIGUSR1, lambda s, f: print("usr1 handled in", threading.current_thread().name))
signal.raise_signal(signal.SIGUSR1)
