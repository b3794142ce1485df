#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Description: the man pages are the parameter reference. Each page names exactly the
# parameters that the program's own --help names: the filter's config_help, the uring
# plugin's, every nbdcrypt subcommand (and every `nbdcrypt kms` command), and the settings
# the kms.conf parser knows. Every [kms] example in the pages, README, docs/operations.md and
# etc/kms.conf.example is accepted by the parser.
import os
import re
import subprocess
import sys
import tempfile

top = os.environ["top_srcdir"]
nbdcrypt = os.environ["NBDCRYPT"]
filter_so = os.environ["NBDCRYPT_FILTER"]
plugin_so = os.environ["NBDCRYPT_URING_PLUGIN"]
failures = []


def run(*argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    return p.stdout + p.stderr


def pod(path):
    with open(os.path.join(top, path)) as f:
        return f.read()


def section(text, start, end=r"^=head1 "):
    """The text from the line matching start up to the next line matching end."""
    m = re.search(start, text, re.M)
    if not m:
        return ""
    rest = text[m.end():]
    e = re.search(end, rest, re.M)
    return rest[:e.start()] if e else rest


def items(text):
    return [l for l in text.splitlines() if l.startswith("=item ")]


def compare(what, from_help, from_page):
    print(f"{what}: {' '.join(sorted(from_help))}")
    if not from_help:
        failures.append(f"{what}: nothing extracted from --help")
    for p in sorted(from_help - from_page):
        failures.append(f"{what}: '{p}' is in --help but not in the man page")
    for p in sorted(from_page - from_help):
        failures.append(f"{what}: '{p}' is in the man page but not in --help")


def help_keys(help_text, header):
    """key= names at the start of lines in the block of --help that follows header."""
    block = section(help_text, header, r"^(plugin|filter): ")
    return set(re.findall(r"^\[?([a-z][a-z0-9-]*)=", block, re.M))


def page_keys(page):
    params = section(page, r"^=head1 PARAMETERS")
    return {m.group(1) for l in items(params)
            for m in [re.match(r"=item \[?B<([a-z][a-z0-9-]*)=>", l)] if m}


# The filter: nbdkit prints its config_help with --help.
compare("nbdkit-nbdcrypt-filter(1)",
        help_keys(run("nbdkit", f"--filter={filter_so}", "null", "--help"), r"^filter: nbdcrypt"),
        page_keys(pod("plugin/nbdcrypt/nbdkit-nbdcrypt-filter.pod")))

# The plugin.
compare("nbdkit-nbdcrypt-uring-plugin(1)",
        help_keys(run("nbdkit", plugin_so, "--help"), r"^plugin: nbdcrypt-uring"),
        page_keys(pod("plugin/uring/nbdkit-nbdcrypt-uring-plugin.pod")))

# nbdcrypt: the list of subcommands, the global options, then each subcommand's options.
page = pod("tools/nbdcrypt.pod")
top_help = run(nbdcrypt, "--help")
commands = set(re.findall(r"^  ([a-z][a-z-]*)\s", top_help, re.M))
compare("nbdcrypt(8) subcommands", commands,
        set(re.findall(r"^=head2 nbdcrypt ([a-z][a-z-]*)", page, re.M)))
compare("nbdcrypt(8) global options", set(re.findall(r"--[a-z][a-z0-9-]*", top_help)),
        {o for l in items(section(page, r"^=head1 OPTIONS", r"^=head")) for o in
         re.findall(r"--[a-z][a-z0-9-]*", l)})
for cmd in sorted(commands):
    h = run(nbdcrypt, cmd, "--help")
    s = section(page, rf"^=head2 nbdcrypt {cmd}\b", r"^=head")
    compare(f"nbdcrypt(8) {cmd} options",
            set(re.findall(r"--[a-z][a-z0-9-]*", h)) - {"--help"},
            {o for l in items(s) for o in re.findall(r"--[a-z][a-z0-9-]*", l)})
    if cmd == "kms":
        # "  create [...]", "  activate UID | destroy UID", "  encrypt|decrypt UID ..."
        sub = set()
        for l in re.findall(r"^  ([a-z].*)$", h, re.M):
            for piece in l.split(" | "):
                sub.update(piece.split()[0].split("|"))
        compare("nbdcrypt(8) kms commands", sub,
                {m.group(1) for l in items(s)
                 for m in [re.match(r"=item B<([a-z][a-z-]*)>", l)] if m})

# kms.conf: the parser lists the settings it knows when it meets an unknown one.
with tempfile.TemporaryDirectory() as d:
    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write("[kms]\nserver = 127.0.0.1:1\nno-such-setting = 1\n")
    out = run(nbdcrypt, "kms", "--config", bad, "versions")
    m = re.search(r"known: ([^)]*)\)", out)
    compare("nbdcrypt-kms.conf(5)", set(m.group(1).split(", ")) if m else set(),
            {m.group(1) for l in items(section(pod("kmip-client/nbdcrypt-kms.conf.pod"),
                                                 r"^=head1 SETTINGS"))
             for m in [re.match(r"=item B<([a-z][a-z0-9-]*)>", l)] if m})

    # Every [kms] example parses. Connecting is not the point: run without a network
    # (unshare -n) so that a KMS address fails at once; a parse error names the file.
    sources = ["kmip-client/nbdcrypt-kms.conf.pod", "etc/kms.conf.example", "README.md",
               "docs/operations.md"]
    n = 0
    for src in sources:
        path = os.path.join(top, src)
        if not os.path.exists(path):
            failures.append(f"{src}: missing")
            continue
        text = open(path).read()
        if src.endswith(".example"):
            blocks = [text]
        else:
            # An example: from a line "[kms]" (indented or not) to the end of its block (a
            # blank line, a line indented less, or a markdown fence).
            blocks = re.findall(r"^( *)\[kms\]\n((?:\1(?!```)\S.*\n)*)", text, re.M)
            blocks = ["[kms]\n" + "".join(l[len(ind):] + "\n" for l in body.splitlines())
                      for ind, body in blocks]
        for i, b in enumerate(blocks):
            n += 1
            conf = os.path.join(d, f"example-{n}.conf")
            with open(conf, "w") as f:
                f.write(b)
            argv = [nbdcrypt, "kms", "--config", conf, "versions"]
            if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
                argv = ["unshare", "-n"] + argv
            else:
                argv = ["timeout", "20"] + argv
            out = run(*argv)
            if conf in out:
                failures.append(f"{src}: [kms] example {i + 1} does not parse: {out.strip()}"
                                f"\n{b}")
    print(f"{n} [kms] examples checked")
    if n < 5:
        failures.append(f"only {n} [kms] examples found")

for f in failures:
    print("FAIL:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
