"""Every random source of the programs is seeded per process (common/base/rng.c,
whose seeding tests/unit/test_rng.c proves across forked processes): libc's
rand()/random() family, never seeded in a program that does not call srand(),
gives every replica the same jitter, so it must not come back. A source scan,
no build needed."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGRAM_DIRS = ("common", "activator", "queue-proxy", "examples")
LIBC_RANDOM = re.compile(r"\b(rand|random|srand|srandom|rand_r|drand48|erand48|lrand48|"
                         r"nrand48|mrand48|jrand48|srand48)\s*\(")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def test_no_unseeded_libc_random_in_the_programs():
    found = []
    for top in PROGRAM_DIRS:
        for dirpath, _, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, errors="replace") as f:
                    code = strip_comments(f.read())
                for m in LIBC_RANDOM.finditer(code):
                    line = code.count("\n", 0, m.start()) + 1
                    found.append("%s:%d: %s()" % (os.path.relpath(path, REPO), line, m.group(1)))
    assert not found, ("libc random functions are shared, unseeded state; use kp_rng_t "
                       "(common/base/rng.h) instead:\n" + "\n".join(found))
