# input() with a prompt when stdin is not a terminal: the prompt goes to
# stdout without a newline; at the end of stdin input() raises EOFError.
first = input("Your JSON: ")
second = input("Next line: ")
print()
print("first:", first)
print("second:", second)
while True:
    try:
        line = input()
    except EOFError:
        print("EOF")
        break
    print("more:", line)
input("after EOF: ")
