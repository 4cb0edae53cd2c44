"""The certificate as Entra and openssl see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.core import certificates
from tests import openssl_cli

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pair() -> certificates.KeyPair:
    return certificates.generate("Contoso, Ltd <prod>", validity_days=365, key_size=2048, now=NOW)


def test_certificate_is_an_x509_v3_client_auth_certificate(pair: certificates.KeyPair) -> None:
    cert = x509.load_pem_x509_certificate(pair.info.certificate_pem.encode())
    assert cert.version is x509.Version.v3
    assert cert.issuer == cert.subject  # self-signed
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)


def test_subject_common_name_keeps_special_characters_escaped(pair: certificates.KeyPair) -> None:
    cert = x509.load_pem_x509_certificate(pair.info.certificate_pem.encode())
    assert (
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Contoso, Ltd <prod>"
    )
    assert pair.info.subject == r"CN=Contoso\, Ltd \<prod\>"


def test_two_certificates_get_different_serial_numbers() -> None:
    a = certificates.generate("a", validity_days=1, key_size=2048, now=NOW)
    b = certificates.generate("a", validity_days=1, key_size=2048, now=NOW)
    ca = x509.load_pem_x509_certificate(a.info.certificate_pem.encode())
    cb = x509.load_pem_x509_certificate(b.info.certificate_pem.encode())
    assert ca.serial_number != cb.serial_number
    assert a.info.thumbprint != b.info.thumbprint


@pytest.mark.parametrize("size", [2048, 3072, 4096])
def test_key_sizes(size: int) -> None:
    pair = certificates.generate("k", validity_days=30, key_size=size, now=NOW)
    assert pair.info.key_size == size
    assert certificates.private_key_matches(pair.private_key_pem, pair.info.certificate_pem)


def test_other_key_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        certificates.generate("k", validity_days=30, key_size=1024, now=NOW)


def test_private_key_is_pkcs8_and_pairs_only_with_its_certificate(
    pair: certificates.KeyPair,
) -> None:
    assert pair.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    other = certificates.generate("o", validity_days=1, key_size=2048, now=NOW)
    assert not certificates.private_key_matches(pair.private_key_pem, other.info.certificate_pem)


def test_openssl_reads_every_download_format_with_the_same_thumbprint(
    pair: certificates.KeyPair, tmp_path: Path, openssl: str
) -> None:
    moduli = set()
    for fmt, inform in (("cer", "DER"), ("pem", "PEM"), ("crt", "PEM")):
        body, _ = certificates.export(pair.info.certificate_pem, fmt)
        path = tmp_path / f"c.{fmt}"
        path.write_bytes(body)
        text = openssl_cli.x509(openssl, path, inform, "-text")
        assert "Version: 3" in text and "TLS Web Client Authentication" in text
        assert openssl_cli.fingerprint(openssl, path, inform) == pair.info.thumbprint
        assert openssl_cli.fingerprint(openssl, path, inform, "-sha256") == (
            pair.info.thumbprint_sha256
        )
        moduli.add(openssl_cli.x509(openssl, path, inform, "-modulus"))
    assert len(moduli) == 1


def test_download_file_names_are_safe() -> None:
    assert certificates.download_filename('a/b\\c"d e', "cer") == "a-b-c-d-e.cer"
    assert certificates.download_filename("../..", "pem") == "certificate.pem"
    assert certificates.download_filename("Prod tenant ✓", "crt") == "Prod-tenant.crt"


def test_a_display_name_longer_than_64_utf8_bytes_still_makes_a_certificate() -> None:
    name = "Ünïcødé tenant ✓ " * 3  # 51 characters, 69 bytes in UTF-8
    pair = certificates.generate(name[:64], validity_days=1, key_size=2048, now=NOW)
    cn = x509.load_pem_x509_certificate(pair.info.certificate_pem.encode()).subject
    value = str(cn.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    assert len(value.encode("utf-8")) <= 64 and name.startswith(value)
