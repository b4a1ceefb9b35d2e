"""Apache httpd + mod_auth_openidc as an OAuth 2.0 resource server: the peer of gk-token.

The same job as gatekeeper's bearer-token scenario, done the way mod_auth_openidc's own
documentation sets up a resource server (``AuthType oauth20``):

- the RS256 signature of ``Authorization: Bearer <JWT>`` checked locally against the issuer's
  JWKS (``OIDCOAuthVerifyJwksUri``; fetched once, then kept in the module's shm cache). The
  module takes only an https JWKS URI, so the dev issuer's JWKS is also served over TLS with a
  throw-away self-signed certificate (``self_signed_certificate``) that Apache does not verify
  (``OIDCOAuthSSLValidateServer Off``: loopback only, the key is fetched once at start);
- ``exp`` checked by the module (it is mandatory for a locally validated JWT access token);
- ``iss``, ``aud`` and the role rule by ``Require claim`` (mod_auth_openidc 2.4.12 has no
  audience or issuer directive for local validation; its later ``OIDCOAuthVerifyAudience``
  does what ``Require claim aud:`` does here);
- the identity passed to the app as gatekeeper passes it (``X-Auth-Request-User``/``-Email``/
  ``-Groups``/``-Issuer`` from the claims, set by mod_headers, so a client-sent copy is
  replaced), an access log line per request (buffered, as gatekeeper batches its writes);
- proxied by mod_proxy_http to the harness's nginx over reused keep-alive connections.

Apache runs in the foreground (``-DFOREGROUND``, the event MPM, one child process with a
thread pool: the counterpart of one gatekeeper worker), everything in ``--dir`` (config, pid,
logs, runtime files), listening on 127.0.0.1 only. This script writes the config, then
*becomes* Apache (``exec``), so the pid the harness measures is Apache's parent process and the
harness sums its child's CPU with it. As root, the child runs as ``www-data`` (Apache refuses
to serve as root).

    python bench/peers/apache.py --dir DIR --port P --upstream-port U \\
        --issuer ISS --jwks-uri URL --audience AUD --role admin

``command()`` gives that line with the harness's ``{python}``/``{port}``/``{upstream_port}``
placeholders; ``versions()`` what RESULTS.md records.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
OPENIDC_PACKAGE = "libapache2-mod-auth-openidc"

CONF = """\
# Written by bench/peers/apache.py; every path in {dir}.
ServerRoot {dir}
ServerName 127.0.0.1
PidFile {dir}/httpd.pid
DefaultRuntimeDir {dir}
ErrorLog {dir}/error.log
LogLevel warn
{user}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so

Listen 127.0.0.1:{port}
# One child process with a pool of threads: the counterpart of one gatekeeper worker.
StartServers 1
ServerLimit 1
ThreadLimit {threads}
ThreadsPerChild {threads}
MaxRequestWorkers {threads}
MinSpareThreads 1
MaxSpareThreads {threads}
MaxConnectionsPerChild 0
# Keep-alive as the harness's nginx does it: no connection churn during a run.
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75
Timeout 30
TraceEnable off

LogFormat "%h %u %t \\"%r\\" %>s %b %D" bench
CustomLog {dir}/access.log bench
BufferedLogs On

OIDCCryptoPassphrase {passphrase}
OIDCOAuthVerifyJwksUri {jwks_uri}
OIDCOAuthSSLValidateServer Off
OIDCOAuthRemoteUserClaim sub
# Claims reach mod_headers through the environment; nothing else is passed on.
OIDCPassClaimsAs environment

<Location />
    AuthType oauth20
    <RequireAll>
        Require claim iss:{issuer}
        Require claim aud:{audience}
        Require claim roles:{role}
    </RequireAll>
    # An authenticated caller without the role gets 403, not a 401 asking to sign in again.
    AuthzSendForbiddenOnFailure On
    RequestHeader set X-Auth-Request-User "%{{OIDC_CLAIM_sub}}e"
    RequestHeader set X-Auth-Request-Email "%{{OIDC_CLAIM_email}}e"
    RequestHeader set X-Auth-Request-Groups "%{{OIDC_CLAIM_roles}}e"
    RequestHeader set X-Auth-Request-Issuer "%{{OIDC_CLAIM_iss}}e"
</Location>

ProxyPass / http://127.0.0.1:{upstream_port}/
ProxyPassReverse / http://127.0.0.1:{upstream_port}/
"""


def render(
    directory: Path, port: int, upstream_port: int, issuer: str, jwks_uri: str, audience: str,
    role: str, threads: int = 64,
) -> str:
    """The httpd.conf for one run."""
    # Apache's children may not run as root; www-data then reads the config and writes nothing.
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    return CONF.format(
        dir=directory, user=user, modules=MODULES, port=port, upstream_port=upstream_port,
        threads=threads, passphrase=secrets.token_hex(16), jwks_uri=jwks_uri, issuer=issuer,
        audience=audience, role=role)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key for 127.0.0.1 (for the JWKS over TLS), via openssl."""
    cert, key = directory / "jwks-cert.pem", directory / "jwks-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def command(directory: Path, issuer: str, jwks_uri: str, audience: str, role: str) -> str:
    """The harness scenario command line that runs Apache from ``directory``."""
    return (f"{{python}} {Path(__file__).resolve()} --dir {directory} --port {{port}} "
            f"--upstream-port {{upstream_port}} --issuer {issuer} --jwks-uri {jwks_uri} "
            f"--audience {audience} --role {role}")


def versions() -> dict[str, str]:
    """``apache2 -v``'s first line and the installed mod_auth_openidc package version."""
    apache = subprocess.run([APACHE, "-v"], capture_output=True, text=True, check=True)
    module = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", OPENIDC_PACKAGE],
                            capture_output=True, text=True, check=False)
    return {"apache2": apache.stdout.splitlines()[0].removeprefix("Server version: "),
            "mod_auth_openidc": module.stdout.strip() or "unknown (not installed with dpkg)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="config, pid, logs go here")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--issuer", required=True, help="the iss a token must carry")
    parser.add_argument("--jwks-uri", required=True)
    parser.add_argument("--audience", required=True, help="the aud a token must carry")
    parser.add_argument("--role", required=True, help="a value the roles claim must hold")
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args()
    directory = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # the www-data child reads nothing here, but may stat its root
    conf = directory / "httpd.conf"
    conf.write_text(render(directory, args.port, args.upstream_port, args.issuer, args.jwks_uri,
                           args.audience, args.role, args.threads))
    sys.stdout.flush()
    os.execv(APACHE, [APACHE, "-d", str(directory), "-f", str(conf), "-DFOREGROUND"])


if __name__ == "__main__":
    main()
