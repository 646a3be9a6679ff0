"""The stub server (tests/support/stub_server.py) behind TLS, for tests of the HTTPS path.

A TLS front on 127.0.0.1 (port 0) terminates TLS with a certificate for 127.0.0.1 and
pipes each connection's bytes to a plain StubServer and back, so every scripted reply and
fault of the stub (errors, drops, truncated bodies, trickles, delays) reaches the client
over TLS unchanged: when the stub closes a connection, the front closes the TLS one. The
certificate comes from the caller (made in the test with `trustme`), so whether the client
trusts it is up to the test."""

import asyncio
import ssl

from tests.support.stub_server import StubServer, ThreadedServer


class TLSStub(ThreadedServer):
    """`with TLSStub(stub_server, server_context) as front:` serves https://127.0.0.1:port."""

    thread_name = "tls-stub"

    def __init__(self, backend: StubServer, context: ssl.SSLContext) -> None:
        super().__init__(context)
        self.backend = backend

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/api/v1"

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            plain_reader, plain_writer = await asyncio.open_connection("127.0.0.1", self.backend.port)
        except OSError:
            client_writer.close()
            return

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(
            copy(client_reader, plain_writer), copy(plain_reader, client_writer), return_exceptions=True
        )


def main() -> None:
    """`python -m tests.support.tls_stub LATENCY_MS CERT_PEM`: the stub behind TLS with the
    key and certificate chain in CERT_PEM, until stdin closes; prints the base URL first."""
    import sys

    latency_ms, pem = float(sys.argv[1]), sys.argv[2]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem)
    with StubServer(latency_s=latency_ms / 1000) as backend, TLSStub(backend, context) as front:
        print(front.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
