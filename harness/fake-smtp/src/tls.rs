//! A test certificate authority and a `localhost` / `127.0.0.1` server
//! certificate, generated at start-up with OpenSSL.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder};

/// PEM files written for mailin, and the CA certificate clients must trust.
pub(crate) struct TestPki {
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) cert_path: PathBuf,
    pub(crate) key_path: PathBuf,
    pub(crate) chain_path: PathBuf,
}

fn name(cn: &str) -> Result<X509Name, ErrorStack> {
    let mut b = X509NameBuilder::new()?;
    b.append_entry_by_text("CN", cn)?;
    Ok(b.build())
}

fn key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn builder(subject: &X509Name, issuer: &X509Name, key: &PKey<Private>) -> Result<X509Builder, ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(2)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    Ok(b)
}

/// CA certificate, server certificate, server key (PEM).
type Pems = (Vec<u8>, Vec<u8>, Vec<u8>);

fn generate() -> Result<Pems, ErrorStack> {
    let ca_key = key()?;
    let ca_name = name("resetkit fake SMTP test CA")?;
    let mut ca = builder(&ca_name, &ca_name, &ca_key)?;
    ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    ca.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    ca.sign(&ca_key, MessageDigest::sha256())?;
    let ca: X509 = ca.build();

    let leaf_key = key()?;
    let mut leaf = builder(&name("localhost")?, &ca_name, &leaf_key)?;
    leaf.append_extension(BasicConstraints::new().build()?)?;
    leaf.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    leaf.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&leaf.x509v3_context(Some(&ca), None))?;
    leaf.append_extension(san)?;
    leaf.sign(&ca_key, MessageDigest::sha256())?;
    let leaf = leaf.build();
    Ok((ca.to_pem()?, leaf.to_pem()?, leaf_key.private_key_to_pem_pkcs8()?))
}

/// Generates the certificates and writes them into `dir`.
pub(crate) fn write_pki(dir: &Path) -> Result<TestPki, String> {
    let (ca_pem, cert_pem, key_pem) = generate().map_err(|e| format!("generating certificates: {e}"))?;
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    let chain_path = dir.join("ca.pem");
    for (path, pem) in [
        (&cert_path, &cert_pem),
        (&key_path, &key_pem),
        (&chain_path, &ca_pem),
    ] {
        std::fs::write(path, pem).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(TestPki {
        ca_pem,
        cert_path,
        key_path,
        chain_path,
    })
}
