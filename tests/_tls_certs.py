"""
Certificates made on the spot for the TLS tests: a self-signed CA, and
certificates it signs for a server (naming C{localhost} and C{127.0.0.1})
and for a client.
"""

import datetime
import ipaddress
import os
from typing import Dict, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes = b"") -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def make_certificates(directory: str, server_names: Sequence[str] = ("localhost", "127.0.0.1")) -> Dict[str, str]:
    """
    Write a CA, a server certificate naming C{server_names} (DNS names and
    IP addresses), a client certificate, their keys, a second unrelated CA,
    and the client key encrypted with a password, as PEM files.

    @param directory: where to write them (created if absent).
    @return: file paths by role: C{ca}, C{other_ca}, C{server_cert},
        C{server_key}, C{client_cert}, C{client_key},
        C{client_key_encrypted}, C{client_combined} (certificate and key in
        one file).
    """
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=2)

    def authority(name: str) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = authority("novasvc test CA")
    _, other_cert = authority("some other CA")

    def leaf(name: str, names: Sequence[str], usage: x509.ObjectIdentifier) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        alternatives = []
        for entry in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                alternatives.append(x509.DNSName(entry))
        builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if alternatives:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    server_key, server_cert = leaf("novasvc test broker", server_names, ExtendedKeyUsageOID.SERVER_AUTH)
    client_key, client_cert = leaf("novasvc test client", (), ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    files = {
        "ca": ca_cert.public_bytes(pem),
        "other_ca": other_cert.public_bytes(pem),
        "server_cert": server_cert.public_bytes(pem),
        "server_key": _key_pem(server_key),
        "client_cert": client_cert.public_bytes(pem),
        "client_key": _key_pem(client_key),
        "client_key_encrypted": _key_pem(client_key, b"secret"),
        "client_combined": client_cert.public_bytes(pem) + _key_pem(client_key),
    }
    paths = {}
    for role, data in files.items():
        path = paths[role] = os.path.join(directory, role + ".pem")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
    return paths
