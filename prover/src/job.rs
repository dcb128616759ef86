//! What flows through the prover: a job's payload ([`ProofJob`], the same bytes
//! on the embedded queue and on PostgreSQL), its witness, its proof, and the
//! proof's stored form.

use bytes::Bytes;
use pjp_core::JobId;
use pjp_gpu::{CpuNtt, Direction, NttJob, NttOutput, field};
use serde::{Deserialize, Serialize};

/// Elements one job may hold at most (2^28 × 8 bytes = 2 GiB).
pub const MAX_ELEMENTS: u64 = 1 << 28;

/// A job larger than [`MAX_ELEMENTS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a job of {batch} polynomial(s) of 2^{log_n} coefficients is {elements} elements; the limit is 2^28"
)]
pub struct SizeError {
    /// Polynomials per job.
    pub batch: u64,
    /// log2 of each polynomial's size.
    pub log_n: u32,
    /// Their product (saturated).
    pub elements: u64,
}

/// Checks the shape every job of a run or an enqueue shares: the one rule
/// both apply, so nothing is enqueued that no worker would prove.
///
/// # Errors
///
/// [`SizeError`] when the job would hold more than [`MAX_ELEMENTS`].
pub fn check_size(batch: u64, log_n: u32) -> Result<(), SizeError> {
    let elements = batch.checked_shl(log_n).unwrap_or(u64::MAX);
    if elements > MAX_ELEMENTS {
        return Err(SizeError {
            batch,
            log_n,
            elements,
        });
    }
    Ok(())
}

/// One proving job's payload: which synthetic witness to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofJob {
    /// The job's number (the witness derives from it and the seed).
    pub job: u64,
    /// log2 of each polynomial's size.
    pub log_n: u32,
    /// Polynomials per job.
    pub batch: u64,
    /// Seed of the synthetic witnesses.
    pub seed: u64,
}

/// Why a payload or a stored result is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Not the JSON of a [`ProofJob`].
    #[error("malformed job payload: {0}")]
    Malformed(String),
    /// A shape no prover accepts.
    #[error(
        "job {job}: {batch} polynomial(s) of 2^{log_n} coefficients is out of range (log_n 1..=24, batch ≥ 1, at most 2^28 elements)"
    )]
    Shape {
        /// The job's number.
        job: u64,
        /// log2 of each polynomial's size.
        log_n: u32,
        /// Polynomials per job.
        batch: u64,
    },
    /// A stored result that is not one this prover wrote.
    #[error("malformed result: {0}")]
    Result(String),
}

impl ProofJob {
    /// The payload's bytes on a queue.
    pub fn encode(&self) -> Bytes {
        // Serialising four integers cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// A payload back from a queue, with its shape checked.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let job: Self =
            serde_json::from_slice(bytes).map_err(|e| PayloadError::Malformed(e.to_string()))?;
        job.check()?;
        Ok(job)
    }

    fn check(&self) -> Result<(), PayloadError> {
        let elements = self.batch.checked_shl(self.log_n).unwrap_or(u64::MAX);
        if (1..=24).contains(&self.log_n) && self.batch >= 1 && elements <= MAX_ELEMENTS {
            Ok(())
        } else {
            Err(PayloadError::Shape {
                job: self.job,
                log_n: self.log_n,
                batch: self.batch,
            })
        }
    }

    /// The job's witness: `batch` polynomials of `2^log_n` canonical field
    /// elements, from the job's seed.
    pub fn witness(&self) -> Vec<u64> {
        let len = usize::try_from(self.batch << self.log_n).unwrap_or(0);
        field::sample(len, job_seed(self.seed, JobId::new(self.job)))
    }

    /// The NTT job over its witness.
    pub fn ntt_job(&self) -> NttJob {
        NttJob::new(
            self.log_n,
            Direction::Forward,
            usize::try_from(self.batch).unwrap_or(0),
            self.witness(),
        )
    }
}

/// The seed of one job's witness.
pub fn job_seed(run_seed: u64, job: JobId) -> u64 {
    splitmix64(run_seed ^ splitmix64(job.get()))
}

/// SplitMix64: a tiny, well-mixed, deterministic generator step.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Stage one's output: a job's witness, ready for the NTT.
#[derive(Debug, Clone)]
pub struct Witness {
    /// The job it was built for.
    pub job: ProofJob,
    /// The polynomials, ready for the NTT.
    pub ntt: NttJob,
}

/// Stage two's output: the NTT of a job's witness.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The job it proves.
    pub job: ProofJob,
    /// The NTT's output.
    pub output: NttOutput,
}

/// The first bytes of a stored proof.
const MAGIC: &[u8; 4] = b"PJP1";

impl Proof {
    /// Whether the proof is right: its inverse NTT gives back the witness.
    pub fn verify(&self, cpu: &CpuNtt) -> Result<bool, String> {
        verify(cpu, &self.job, &self.output.coeffs)
    }

    /// The stored form: `PJP1`, the payload's JSON length (u32 LE), the
    /// payload's JSON, then the coefficients (u64 LE).
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = self.job.encode();
        let mut out = Vec::with_capacity(8 + header.len() + 8 * self.output.coeffs.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&u32::try_from(header.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&header);
        for c in &self.output.coeffs {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// SHA-256 of the stored form ([`to_bytes`](Self::to_bytes)), without
    /// building it: the proof's leaf in its batch's Merkle root.
    pub fn leaf(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let header = self.job.encode();
        let mut hasher = Sha256::new();
        hasher.update(MAGIC);
        hasher.update(u32::try_from(header.len()).unwrap_or(0).to_le_bytes());
        hasher.update(&header);
        let mut buffer = Vec::with_capacity(8 * 1024);
        for chunk in self.output.coeffs.chunks(1024) {
            buffer.clear();
            for c in chunk {
                buffer.extend_from_slice(&c.to_le_bytes());
            }
            hasher.update(&buffer);
        }
        hasher.finalize().into()
    }
}

/// Whether `coeffs` are the forward NTT of `job`'s witness: their inverse NTT
/// gives the witness back.
fn verify(cpu: &CpuNtt, job: &ProofJob, coeffs: &[u64]) -> Result<bool, String> {
    let mut coeffs = coeffs.to_vec();
    cpu.transform(&mut coeffs, job.log_n, Direction::Inverse)
        .map_err(|e| e.to_string())?;
    Ok(coeffs == job.witness())
}

/// A proof read back from where a fleet worker stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProof {
    /// The job it proves.
    pub job: ProofJob,
    /// The NTT's output coefficients.
    pub coeffs: Vec<u64>,
}

impl StoredProof {
    /// Whether the stored proof is right.
    pub fn verify(&self, cpu: &CpuNtt) -> Result<bool, String> {
        verify(cpu, &self.job, &self.coeffs)
    }

    /// Reads the form [`Proof::to_bytes`] writes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PayloadError> {
        let bad = |why: &str| PayloadError::Result(why.to_owned());
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("no PJP1 header"))?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| bad("truncated"))?) as usize;
        let (header, body) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let job = Self::decode_header(header)?;
        let expected = usize::try_from(job.batch << job.log_n).unwrap_or(usize::MAX);
        if body.len() != expected.saturating_mul(8) {
            return Err(bad(&format!(
                "{} coefficient bytes, expected {}",
                body.len(),
                expected.saturating_mul(8)
            )));
        }
        let coeffs = body
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Ok(Self { job, coeffs })
    }

    fn decode_header(header: &[u8]) -> Result<ProofJob, PayloadError> {
        ProofJob::decode(header).map_err(|e| PayloadError::Result(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ProofJob {
        ProofJob {
            job: 3,
            log_n: 4,
            batch: 2,
            seed: 9,
        }
    }

    #[test]
    fn witnesses_are_canonical_deterministic_and_distinct() {
        let a = job().witness();
        assert_eq!(a.len(), 32);
        assert!(a.iter().all(|&x| field::is_canonical(x)));
        assert_eq!(a, job().witness());
        assert_ne!(a, ProofJob { job: 4, ..job() }.witness());
        assert_ne!(a, ProofJob { seed: 10, ..job() }.witness());
    }

    #[test]
    fn payloads_round_trip_and_bad_ones_are_refused() {
        assert_eq!(ProofJob::decode(&job().encode()), Ok(job()));
        assert!(matches!(
            ProofJob::decode(b"{\"job\":1}"),
            Err(PayloadError::Malformed(_))
        ));
        for (log_n, batch) in [(0, 1), (25, 1), (20, 0), (24, 1 << 10)] {
            let bytes = ProofJob {
                log_n,
                batch,
                ..job()
            }
            .encode();
            assert!(
                matches!(ProofJob::decode(&bytes), Err(PayloadError::Shape { .. })),
                "{log_n} {batch}"
            );
        }
    }

    #[test]
    fn proofs_round_trip_verify_and_reject_corruption() -> anyhow::Result<()> {
        let cpu = CpuNtt::new();
        let mut ntt = job().ntt_job();
        cpu.transform(&mut ntt.coeffs, ntt.log_n, Direction::Forward)?;
        let proof = Proof {
            job: job(),
            output: NttOutput {
                log_n: 4,
                batch: 2,
                coeffs: ntt.coeffs.clone(),
                backend: pjp_gpu::BackendKind::Cpu,
            },
        };
        assert_eq!(proof.verify(&cpu), Ok(true));
        let bytes = proof.to_bytes();
        // The leaf hashes the stored form without building it.
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        assert_eq!(proof.leaf(), digest);
        let stored = StoredProof::from_bytes(&bytes)?;
        assert_eq!(
            stored,
            StoredProof {
                job: job(),
                coeffs: ntt.coeffs
            }
        );
        assert_eq!(stored.verify(&cpu), Ok(true));

        let mut wrong = proof;
        wrong.output.coeffs[5] = field::add(wrong.output.coeffs[5], 1);
        assert_eq!(wrong.verify(&cpu), Ok(false));
        assert!(StoredProof::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(StoredProof::from_bytes(b"nope").is_err());
        Ok(())
    }
}
