//! The signed envelope every signed ROT message travels in:
//!
//! ```json
//! {"tag":"rot/heartbeat","version":1,"key":"<64 hex>","body":{...},"signature":"<128 hex>"}
//! ```
//!
//! The signature is ed25519 over the canonical encoding of the object `{tag, version, key,
//! body}`: the domain tag keeps one message type's signature from passing as another's, the
//! version pins the rules, and the key binds the signer. The body is kept exactly as received,
//! so fields added by a newer peer stay covered and still verify.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::canonical::canonical_bytes;
use crate::identity::{self, Identity, PublicKey, Signature};

/// The protocol version this implementation signs and accepts.
pub const PROTOCOL_VERSION: u64 = 1;

/// A message type that travels signed. Its tag is the signature's domain separator, by
/// convention `rot/<kebab-case name>`.
pub trait SignedBody: Serialize + DeserializeOwned {
    /// The domain tag of this message type.
    const TAG: &'static str;

    /// The key the body itself names as its author, if it names one; [`Signed::verify`]
    /// requires it to be the envelope's signer, so nobody can sign a claim in another's name.
    fn claimed_signer(&self) -> Option<&PublicKey> {
        None
    }
}

/// The bytes a signer signs: the canonical encoding of `{tag, version, key, body}`.
pub fn signing_bytes(tag: &str, version: u64, key: &str, body: &Value) -> Result<Vec<u8>, Error> {
    let mut message = serde_json::Map::new();
    message.insert("tag".to_owned(), Value::from(tag));
    message.insert("version".to_owned(), Value::from(version));
    message.insert("key".to_owned(), Value::from(key));
    message.insert("body".to_owned(), body.clone());
    canonical_bytes(&Value::Object(message))
}

/// A signed envelope carrying a `T`. Deserializing one checks only its shape; call
/// [`Signed::verify`] before trusting anything in it.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Signed<T> {
    tag: String,
    version: u64,
    key: String,
    body: Value,
    signature: String,
    #[serde(skip)]
    body_type: PhantomData<fn() -> T>,
}

impl<T: SignedBody> Signed<T> {
    /// Signs `body` as `identity` under `T::TAG` and [`PROTOCOL_VERSION`].
    pub fn sign(identity: &Identity, body: &T) -> Result<Self, Error> {
        let body = serde_json::to_value(body).map_err(|e| Error::MalformedBody(e.to_string()))?;
        let key = identity.public_key().to_string();
        let message = signing_bytes(T::TAG, PROTOCOL_VERSION, &key, &body)?;
        Ok(Self {
            tag: T::TAG.to_owned(),
            version: PROTOCOL_VERSION,
            key,
            signature: identity.sign(&message).to_string(),
            body,
            body_type: PhantomData,
        })
    }

    /// Checks tag, version, key, signature (in that order, each with its own error), then
    /// decodes the body and checks that any signer it names is the envelope's.
    pub fn verify(&self) -> Result<T, Error> {
        if self.tag != T::TAG {
            return Err(Error::WrongTag {
                expected: T::TAG,
                found: self.tag.clone(),
            });
        }
        if self.version != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion {
                found: self.version,
                supported: PROTOCOL_VERSION,
            });
        }
        let key = self.signer()?;
        let signature: Signature = self.signature.parse()?;
        let message = signing_bytes(&self.tag, self.version, &self.key, &self.body)?;
        identity::verify(&key, &message, &signature)?;
        let body = T::deserialize(&self.body).map_err(|e| Error::MalformedBody(e.to_string()))?;
        match body.claimed_signer() {
            Some(&claimed) if claimed != key => Err(Error::SignerMismatch {
                signer: key,
                claimed,
            }),
            _ => Ok(body),
        }
    }

    /// The key the envelope claims to be signed by; proven only once [`Signed::verify`]
    /// succeeds.
    pub fn signer(&self) -> Result<PublicKey, Error> {
        self.key.parse()
    }

    /// The domain tag as received.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The protocol version as received.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The body exactly as received (covered by the signature, including unknown fields).
    pub fn body(&self) -> &Value {
        &self.body
    }
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Self {
            tag: self.tag.clone(),
            version: self.version,
            key: self.key.clone(),
            body: self.body.clone(),
            signature: self.signature.clone(),
            body_type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("tag", &self.tag)
            .field("version", &self.version)
            .field("key", &self.key)
            .field("body", &self.body)
            .field("signature", &self.signature)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u64,
        note: String,
    }

    impl SignedBody for Ping {
        const TAG: &'static str = "rot/test-ping";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pong {
        n: u64,
        note: String,
    }

    impl SignedBody for Pong {
        const TAG: &'static str = "rot/test-pong";
    }

    fn identity() -> Identity {
        Identity::from_seed([42; 32])
    }

    fn ping() -> Ping {
        Ping {
            n: 7,
            note: "hi".to_owned(),
        }
    }

    /// The envelope as wire JSON, edited by `edit`, parsed back.
    fn tampered<T: SignedBody>(signed: &Signed<T>, edit: impl FnOnce(&mut Value)) -> Signed<T> {
        let mut wire = serde_json::to_value(signed).unwrap();
        edit(&mut wire);
        serde_json::from_value(wire).unwrap()
    }

    #[test]
    fn round_trips_through_wire_json() {
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let text = serde_json::to_string(&signed).unwrap();
        let received: Signed<Ping> = serde_json::from_str(&text).unwrap();
        assert_eq!(received.verify().unwrap(), ping());
        assert_eq!(received.signer().unwrap(), identity().public_key());
        assert_eq!(received.tag(), "rot/test-ping");
        assert_eq!(received.version(), PROTOCOL_VERSION);
    }

    #[test]
    fn wire_shape_is_the_documented_envelope() {
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let wire = serde_json::to_value(&signed).unwrap();
        let object = wire.as_object().unwrap();
        let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["body", "key", "signature", "tag", "version"]);
        assert_eq!(wire["body"], json!({"n": 7, "note": "hi"}));
        assert_eq!(wire["key"], json!(identity().public_key().to_string()));
        assert_eq!(wire["signature"].as_str().unwrap().len(), 128);
    }

    #[test]
    fn signature_covers_the_canonical_message() {
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let key = identity().public_key();
        let message = signing_bytes(
            "rot/test-ping",
            1,
            &key.to_string(),
            &json!({"note": "hi", "n": 7}),
        )
        .unwrap();
        let signature: Signature =
            serde_json::from_value(serde_json::to_value(&signed).unwrap()["signature"].clone())
                .unwrap();
        identity::verify(&key, &message, &signature).unwrap();
    }

    #[test]
    fn tampered_body_is_rejected() {
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let forged = tampered(&signed, |wire| wire["body"]["n"] = json!(8));
        assert!(matches!(forged.verify(), Err(Error::BadSignature)));
        let extended = tampered(&signed, |wire| wire["body"]["extra"] = json!(true));
        assert!(matches!(extended.verify(), Err(Error::BadSignature)));
    }

    #[test]
    fn swapped_key_is_rejected() {
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let other = Identity::from_seed([9; 32]).public_key().to_string();
        let forged = tampered(&signed, |wire| wire["key"] = json!(other));
        assert!(matches!(forged.verify(), Err(Error::BadSignature)));
    }

    #[test]
    fn wrong_domain_tag_is_rejected() {
        // The same body shape under another type: a ping signature cannot pass as a pong.
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let as_pong: Signed<Pong> =
            serde_json::from_value(serde_json::to_value(&signed).unwrap()).unwrap();
        assert!(matches!(
            as_pong.verify(),
            Err(Error::WrongTag {
                expected: "rot/test-pong",
                ..
            })
        ));
        // Relabelling the tag breaks the signature, which covers it.
        let relabelled = tampered(&as_pong, |wire| wire["tag"] = json!("rot/test-pong"));
        assert!(matches!(relabelled.verify(), Err(Error::BadSignature)));
    }

    #[test]
    fn other_version_is_rejected() {
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let future = tampered(&signed, |wire| wire["version"] = json!(2));
        assert!(matches!(
            future.verify(),
            Err(Error::UnsupportedVersion {
                found: 2,
                supported: PROTOCOL_VERSION
            })
        ));
    }

    #[test]
    fn malformed_key_and_signature_have_their_own_errors() {
        let signed = Signed::sign(&identity(), &ping()).unwrap();
        let bad_key = tampered(&signed, |wire| wire["key"] = json!("abc"));
        assert!(matches!(bad_key.verify(), Err(Error::MalformedKey(_))));
        let bad_signature = tampered(&signed, |wire| wire["signature"] = json!("00"));
        assert!(matches!(
            bad_signature.verify(),
            Err(Error::MalformedSignature(_))
        ));
        let zero_signature = tampered(&signed, |wire| wire["signature"] = json!("0".repeat(128)));
        assert!(matches!(zero_signature.verify(), Err(Error::BadSignature)));
    }

    #[test]
    fn unknown_body_fields_from_newer_peers_still_verify() {
        // A newer peer signs a body with a field this version does not know.
        let newer = json!({"n": 7, "note": "hi", "added_later": {"x": [1, 2]}});
        let key = identity().public_key().to_string();
        let message = signing_bytes(Ping::TAG, PROTOCOL_VERSION, &key, &newer).unwrap();
        let wire = json!({
            "tag": Ping::TAG,
            "version": PROTOCOL_VERSION,
            "key": key,
            "body": newer,
            "signature": identity().sign(&message).to_string(),
        });
        let received: Signed<Ping> = serde_json::from_value(wire).unwrap();
        assert_eq!(received.verify().unwrap(), ping());
        assert_eq!(received.body()["added_later"]["x"], json!([1, 2]));
    }

    #[test]
    fn signed_body_of_wrong_shape_is_malformed() {
        let key = identity().public_key().to_string();
        let body = json!({"n": "seven"});
        let message = signing_bytes(Ping::TAG, PROTOCOL_VERSION, &key, &body).unwrap();
        let wire = json!({
            "tag": Ping::TAG, "version": 1, "key": key, "body": body,
            "signature": identity().sign(&message).to_string(),
        });
        let received: Signed<Ping> = serde_json::from_value(wire).unwrap();
        assert!(matches!(received.verify(), Err(Error::MalformedBody(_))));
    }

    #[test]
    fn body_without_canonical_form_is_refused() {
        #[derive(Serialize, Deserialize)]
        struct Float {
            x: f64,
        }
        impl SignedBody for Float {
            const TAG: &'static str = "rot/test-float";
        }
        assert!(matches!(
            Signed::sign(&identity(), &Float { x: 0.5 }),
            Err(Error::Canonical(_))
        ));
    }
}
