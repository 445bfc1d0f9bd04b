# Classes defined in __main__: pickle, dataclasses, enums and typing find
# them through sys.modules["__main__"].
import dataclasses
import enum
import pickle
import typing


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Named(typing.NamedTuple):
    name: str
    n: int


p = pickle.loads(pickle.dumps(Point(1, 2)))
print(p, p == Point(1, 2), Point.__module__, Point.__qualname__)
print(pickle.loads(pickle.dumps(Color.BLUE)), repr(Color.RED))
print(pickle.loads(pickle.dumps(Named("a", 1))), typing.get_type_hints(Point))
print([(f.name, f.type, f.default) for f in dataclasses.fields(Point)][1])
