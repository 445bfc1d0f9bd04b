# A subclass of KeyboardInterrupt is an ordinary failure: exit code 1.
class Stop(KeyboardInterrupt):
    pass


raise Stop("subclass")
