# A trace and a profile function left installed see what runs after the
# module ends: the interpreter's own shutdown, nothing of the server's.
import os
import sys

after = []


def note(*what, write=os.write, after=after):
    if after:
        write(1, ("%r\n" % (what,)).encode())


def tracer(frame, event, arg, note=note):
    note("trace", event, frame.f_code.co_name, frame.f_code.co_filename.rpartition("/")[2])
    return tracer


def profiler(frame, event, arg, note=note):
    note("profile", event, getattr(arg, "__name__", frame.f_code.co_name))


class Late:
    def __del__(self):
        pass


late = Late()
sys.settrace(tracer)
sys.setprofile(profiler)
after.append(True)
