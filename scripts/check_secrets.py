#!/usr/bin/env python3
"""Fail when a tracked file holds a string shaped like a real API key.

Usage: python scripts/check_secrets.py [PATH ...]   (default: every file git tracks)
Prints the file, the line and the kind of key — never the key itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

KEY_SHAPES = {
    "Google / Gemini API key": re.compile(r"AIza[0-9A-Za-z_\-]{35}"),
    "OpenAI key": re.compile(
        r"sk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}|sk-proj-[A-Za-z0-9_\-]{40,}"
    ),
    "OpenRouter key": re.compile(r"sk-or-v1-[0-9a-f]{64}"),
    "Groq key": re.compile(r"gsk_[A-Za-z0-9]{48,}"),
    "Hugging Face token": re.compile(r"hf_[A-Za-z]{34,}"),
    "xAI key": re.compile(r"xai-[A-Za-z0-9]{60,}"),
    "Anthropic key": re.compile(r"sk-ant-[A-Za-z0-9_\-]{80,}"),
    "GitHub token": re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}"),
    "AWS access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
}


def tracked_files(root: Path) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return [root / name for name in out.decode().split("\0") if name]


def scan(paths: list[Path]) -> list[str]:
    findings = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="ignore")
        except (OSError, IsADirectoryError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for kind, pattern in KEY_SHAPES.items():
                if pattern.search(line):
                    findings.append(f"{path}:{number}: looks like a {kind}")
    return findings


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    paths = [Path(a) for a in argv] if argv else tracked_files(root)
    findings = scan(paths)
    for finding in findings:
        print(finding)
    if findings:
        print("Remove these keys (and revoke them): keys belong in Colab secrets or a git-ignored .env file.")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
