//! Everything that can go wrong while loading, checking or issuing the PKI. Every variant names
//! the certificate or file it is about and, where the user can fix it, says how.

use std::path::PathBuf;

/// An error of the PKI stage. Messages name the certificate (kubeadm's name, e.g. `apiserver`)
/// and the file, and end with a hint where removing or renewing a file fixes it.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The embedded `pki/profiles.yaml` is not a valid profile table (a bug in `boot`).
    #[error("the certificate profiles in pki/profiles.yaml are invalid: {reason}")]
    Profiles { reason: String },

    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a PEM-encoded {expected}: {reason}")]
    Pem {
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },

    #[error("failed to parse the certificate in {path}: {reason}")]
    ParseCert { path: PathBuf, reason: String },

    #[error("failed to parse the private key in {path}: {reason}")]
    ParseKey { path: PathBuf, reason: String },

    #[error(
        "unknown key algorithm {value:?}: valid values are RSA-2048, RSA-3072, RSA-4096, \
         ECDSA-P256, ECDSA-P384"
    )]
    UnknownAlgorithm { value: String },

    #[error("failed to generate a {algorithm} key: {reason}")]
    KeyGeneration { algorithm: String, reason: String },

    #[error("failed to sign certificate {name}: {reason}")]
    Sign { name: String, reason: String },

    #[error(
        "{path} is not a CA certificate (basic constraints CA:TRUE and key usage cert-sign are \
         required); remove it and its key to have a new CA issued"
    )]
    NotACa { path: PathBuf },

    #[error(
        "the private key {key} does not belong to the certificate {cert}; restore the matching \
         pair or remove both to have them re-issued"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    #[error(
        "{present} exists but {missing} does not; restore {missing} or remove {present} to \
         have both re-issued"
    )]
    IncompletePair { present: PathBuf, missing: PathBuf },

    #[error(
        "certificate {name} ({path}) is not valid at this time: valid from {not_before} until \
         {not_after}; {hint}"
    )]
    OutsideValidity {
        name: String,
        path: PathBuf,
        not_before: String,
        not_after: String,
        hint: &'static str,
    },

    #[error(
        "certificate {name} ({path}) is not signed by its CA {ca}: {reason}; remove it to have \
         it re-issued"
    )]
    NotSignedByCa {
        name: String,
        path: PathBuf,
        ca: PathBuf,
        reason: String,
    },

    #[error(
        "certificate {name} ({path}) does not match its profile: {differences}; remove it to \
         have it re-issued"
    )]
    ProfileMismatch {
        name: String,
        path: PathBuf,
        differences: String,
    },

    #[error(
        "certificate {name} ({path}) is missing and cannot be issued: {ca_key} is not present \
         (external CA mode); provide it signed by the external CA"
    )]
    ExternalCaMissingLeaf {
        name: String,
        path: PathBuf,
        ca_key: PathBuf,
    },

    #[error(
        "cannot issue a client certificate for {cn:?}: the cluster CA key is not present \
         (external CA mode); provide the kubeconfig files signed by the external CA"
    )]
    ExternalCaNoKey { cn: String },

    #[error("cannot issue a certificate for {cn:?}: {reason}")]
    Subject { cn: String, reason: String },

    #[error(
        "the service-account public key {public} does not belong to {private}; remove {public} \
         to have it derived again"
    )]
    ServiceAccountMismatch { public: PathBuf, private: PathBuf },
}
