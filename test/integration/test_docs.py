"""Swagger UI and the spec, served by the real binary; the UI rendered in
headless Chromium."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from harness import REPO, IntegrationTest

ARTIFACTS = REPO / "build" / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic", "--hide-scrollbars"]


class DocsTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                       "SWAGGER_DIR": str(REPO / "web" / "swagger")})

    def test_openapi_yaml_is_the_repo_spec(self):
        code, headers, body = self.svc.get("/openapi.yaml")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "application/yaml")
        self.assertEqual(body, (REPO / "openapi.yaml").read_bytes())

    def test_doc_json_is_the_same_spec(self):
        code, headers, body = self.svc.get("/swagger/doc.json")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(json.loads(body),
                         json.loads(json.dumps(yaml.safe_load(
                             (REPO / "openapi.yaml").read_text()), default=str)))

    def test_swagger_redirects_to_slash(self):
        code, headers, _ = self.svc.get("/swagger")
        self.assertEqual(code, 301)
        self.assertEqual(headers["location"], "/swagger/")

    def test_assets_with_content_types(self):
        for name, ctype in (("", "text/html; charset=utf-8"),
                            ("swagger-ui.css", "text/css; charset=utf-8"),
                            ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
                            ("swagger-ui-standalone-preset.js", "text/javascript; charset=utf-8"),
                            ("favicon-32x32.png", "image/png")):
            with self.subTest(name=name):
                code, headers, body = self.svc.get("/swagger/" + name)
                self.assertEqual(code, 200, "run `make swagger-ui` first")
                self.assertEqual(headers["content-type"], ctype)
                disk = REPO / "web" / "swagger" / (name or "index.html")
                self.assertEqual(body, disk.read_bytes())
        # Names are matched decoded, as the router matches paths.
        self.assertEqual(self.svc.get("/swagger/swagger%2Dui.css")[0], 200)
        self.assertEqual(self.svc.get("/swagger/nope.js")[0], 404)
        self.assertEqual(self.svc.get("/swagger/%2e%2e%2fREADME.md")[0], 404)

    def test_assets_lengths_get_and_head(self):
        # Served from read-only mappings of the files: Content-Length is the
        # file's size for GET and HEAD, and HEAD sends no body.
        for name in ("index.html", "swagger-ui.css", "swagger-ui-bundle.js",
                     "swagger-ui-standalone-preset.js", "favicon-16x16.png"):
            with self.subTest(name=name):
                size = (REPO / "web" / "swagger" / name).stat().st_size
                code, headers, body = self.svc.get("/swagger/" + name)
                self.assertEqual((code, len(body)), (200, size))
                self.assertEqual(int(headers["content-length"]), size)
                code, headers, body = self.svc.request("HEAD", "/swagger/" + name)
                self.assertEqual((code, body), (200, b""))
                self.assertEqual(int(headers["content-length"]), size)
        # Keep-alive framing held: the connection's next answer parses.
        self.assertEqual(self.svc.get("/swagger/")[0], 200)

    def test_assets_file_backed_not_copied(self):
        # The 2 MiB of assets are mapped from their files, not copied onto the
        # heap: the bundle shows in the process's maps as itself. A file
        # replaced on disk later (a new inode, as `make swagger-ui` does) leaves
        # what is served unchanged, and an empty file is served as empty.
        with tempfile.TemporaryDirectory() as tmp:
            src = REPO / "web" / "swagger"
            for f in src.iterdir():
                shutil.copyfile(f, Path(tmp) / f.name)
            (Path(tmp) / "empty.css").write_bytes(b"")
            svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                      "SWAGGER_DIR": tmp})
            with open(f"/proc/{svc.proc.pid}/maps") as m:
                maps = m.read()
            self.assertIn(str(Path(tmp) / "swagger-ui-bundle.js"), maps)
            self.assertIn(str(Path(tmp) / "swagger-ui.css"), maps)
            before = (src / "swagger-ui.css").read_bytes()
            (Path(tmp) / "new.css").write_bytes(b"/* replaced */")
            os.replace(Path(tmp) / "new.css", Path(tmp) / "swagger-ui.css")
            code, headers, body = svc.get("/swagger/swagger-ui.css")
            self.assertEqual((code, body), (200, before))
            code, headers, body = svc.get("/swagger/empty.css")
            self.assertEqual((code, body, headers["content-length"]), (200, b"", "0"))
            self.assertEqual(svc.get("/swagger/swagger-ui-bundle.js")[2],
                             (src / "swagger-ui-bundle.js").read_bytes())
            svc.stop()

    def test_missing_assets_say_how_to_get_them(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "SWAGGER_DIR": "/nonexistent"})
        code, doc = svc.json("GET", "/swagger/")
        self.assertEqual(code, 503)
        self.assertIn("make swagger-ui", doc["error"])
        # The spec itself does not depend on the assets.
        self.assertEqual(svc.get("/openapi.yaml")[0], 200)
        svc.wait_log(lambda e: e.get("component") == "docs" and e.get("level") == "warn")

    def test_rendered_in_chromium(self):
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "Debian's chromium package is needed (packages.txt)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        url = self.svc.url + "/swagger/"
        with tempfile.TemporaryDirectory() as profile:
            base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                    "--virtual-time-budget=20000"]
            dom = subprocess.run(base + ["--dump-dom", url], capture_output=True,
                                 text=True, timeout=120).stdout
            shot = ARTIFACTS / "swagger-ui.png"
            if shot.exists():
                shot.unlink()
            subprocess.run(base + ["--window-size=1280,2200", f"--screenshot={shot}", url],
                           capture_output=True, timeout=120)
        (ARTIFACTS / "swagger-ui.html").write_text(dom)
        # The page ran its JavaScript, loaded /openapi.yaml and lists every
        # operation of the spec.
        self.assertIn("GoPulse Messages API", dom)
        spec = yaml.safe_load((REPO / "openapi.yaml").read_text())
        for path, ops in spec["paths"].items():
            for method in ops:
                if method not in ("get", "post", "put", "delete", "patch", "head"):
                    continue
                with self.subTest(op=f"{method} {path}"):
                    self.assertIn(f'data-path="{path}"', dom)
        self.assertIn("opblock-summary-method", dom)
        self.assertTrue(shot.exists() and shot.stat().st_size > 10000,
                        "screenshot written to build/test-artifacts/")
