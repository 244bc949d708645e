"""The layers of the source stay what the README's picture says.

The HTTP handlers (src/api_*.c) reach the rest of the program only through the service
interface (include/service.h): they include neither app.h nor a driver, store, cache or
scheduler header, and the service header itself includes none of them. A handler that
reached past it would compile and work, so only this check catches it.
"""

from __future__ import annotations

import re
import unittest

from harness import REPO

BEHIND_THE_SERVICE = {
    "app.h", "pg.h", "redis.h", "resolve.h", "store.h", "cache.h", "scheduler.h",
    "producer.h", "webhook.h", "outcome.h", "migrate.h", "pgarray.h", "pgpool.h",
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path) -> set[str]:
    return set(INCLUDE.findall(path.read_text()))


class LayersTest(unittest.TestCase):
    def test_handlers_see_only_the_service(self):
        handlers = sorted((REPO / "src").glob("api_*.c"))
        self.assertGreater(len(handlers), 2)
        for path in handlers + [REPO / "include" / "api.h", REPO / "include" / "service.h"]:
            with self.subTest(file=path.name):
                self.assertEqual(includes(path) & BEHIND_THE_SERVICE, set())

    def test_the_check_sees_includes(self):
        # Guard against a pattern that matches nothing (and so passes everything).
        self.assertIn("service.h", includes(REPO / "src" / "api_messages.c"))
        self.assertIn("pg.h", includes(REPO / "src" / "service.c"))


if __name__ == "__main__":
    unittest.main()
