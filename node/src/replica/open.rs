//! Opening many envelopes at once on the machine's cores: each envelope's
//! signature is checked and then its payload decoded, exactly as
//! [`Envelope::open`] does one; only the work is shared out. A batch from a
//! peer or a stretch of a bundle is opened this way before the replica,
//! which stays single-threaded, stores what verified.

use gatehouse_protocol::envelope::{Envelope, Verified, VerifyError};
use gatehouse_protocol::id::NetworkId;

/// Fewest envelopes worth a thread of their own.
const PER_THREAD: usize = 32;
/// Most threads one batch is opened on.
const MAX_THREADS: usize = 4;

/// Opens each of `envelopes` (as [`Envelope::open`]), the results in order,
/// on up to [`MAX_THREADS`] threads (no more than the machine has cores).
pub fn open_all(envelopes: &[&[u8]], network: &NetworkId) -> Vec<Result<Verified, VerifyError>> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores
        .min(MAX_THREADS)
        .min(envelopes.len() / PER_THREAD)
        .max(1);
    if threads == 1 {
        return envelopes
            .iter()
            .map(|b| Envelope::open(b, network))
            .collect();
    }
    let share = envelopes.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = envelopes
            .chunks(share)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|b| Envelope::open(b, network))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .zip(envelopes.chunks(share))
            .flat_map(|(handle, part)| {
                // Opening does not panic (Automerge's parser is guarded);
                // were a thread lost, its share is opened here instead.
                handle
                    .join()
                    .unwrap_or_else(|_| part.iter().map(|b| Envelope::open(b, network)).collect())
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::id::EstablishmentId;
    use gatehouse_protocol::key::SecretKey;

    fn item(n: u64, key: &SecretKey, network: &NetworkId) -> Vec<u8> {
        crate::authoring::new_item(
            &crate::sample::synthetic_content(n),
            key,
            &[7; 16],
            EstablishmentId([1; 16]),
            network,
            1_700_000_000_000 + n,
        )
        .expect("item")
        .bytes()
        .to_vec()
    }

    #[test]
    fn many_envelopes_open_as_each_alone_in_order() {
        let key = SecretKey::from_seed([9; 32]);
        let network = NetworkId([4; 32]);
        let mut envelopes: Vec<Vec<u8>> = (0..300u64).map(|n| item(n, &key, &network)).collect();
        // A forged one, a cut one and one of another network among them.
        let last = envelopes[10].len() - 1;
        envelopes[10][last] ^= 1;
        envelopes[150].truncate(20);
        envelopes[299] = item(299, &key, &NetworkId([5; 32]));
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let together = open_all(&refs, &network);
        assert_eq!(together.len(), envelopes.len());
        for (bytes, got) in envelopes.iter().zip(&together) {
            let alone = Envelope::open(bytes, &network);
            match (alone, got) {
                (Ok(a), Ok(b)) => assert_eq!(a.id(), b.id()),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("alone {a:?}, together {b:?}"),
            }
        }
        assert!(matches!(together[10], Err(VerifyError::BadSignature(_))));
        assert!(matches!(together[150], Err(VerifyError::Malformed(_))));
        assert!(matches!(
            together[299],
            Err(VerifyError::WrongNetwork { .. })
        ));
    }
}
