# SPDX-License-Identifier: BSD-3-Clause
# Runs a command as systemd socket activation would: a listening Unix socket on fd 3,
# LISTEN_FDS=1 and LISTEN_PID = the command's pid (exec keeps it). Usage:
#   listen-fds.py SOCKET COMMAND [ARGS...]
import os
import socket
import sys

path, argv = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))
os.execvpe(argv[0], argv, env)
