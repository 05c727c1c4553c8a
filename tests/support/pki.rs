//! Certificates for the mutual-TLS tests, made by rcgen: a CA, a server certificate for
//! 127.0.0.1 and two client certificates.

/// A CA, a server certificate for 127.0.0.1 and two client certificates.
pub struct Pki {
    pub ca_pem: String,
    pub server_pem: String,
    pub server_key_pem: String,
    /// Certificate and key PEM of each client.
    pub clients: [(String, String); 2],
    /// The DER of each client certificate.
    pub client_der: [Vec<u8>; 2],
}

pub fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &*ca).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    };
    let (server_pem, server_key_pem, _) = leaf(vec!["127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth);
    let (a_pem, a_key, a_der) = leaf(vec!["client-a".into()], ExtendedKeyUsagePurpose::ClientAuth);
    let (b_pem, b_key, b_der) = leaf(vec!["client-b".into()], ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        ca_pem: ca.pem(),
        server_pem,
        server_key_pem,
        clients: [(a_pem, a_key), (b_pem, b_key)],
        client_der: [a_der, b_der],
    }
}

pub fn x5t(der: &[u8]) -> String {
    tokengate::binding::ClientCertificate::from_der(der.to_vec())
        .thumbprint()
        .to_owned()
}
