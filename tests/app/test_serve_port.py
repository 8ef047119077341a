"""`sashie serve` on a port another server holds: one error line, nothing printed before it."""

import socket

from sashie import Library

from conftest import start_cli_process


def test_serving_on_a_busy_port_says_so_in_one_line(tmp_path):
    Library(tmp_path / "lib", create=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start_cli_process("serve", tmp_path / "lib", "--port", str(port))
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and stdout == ""
    assert stderr == (
        f"error: port {port} on 127.0.0.1 is in use (another server?); choose another with --port\n"
    )
