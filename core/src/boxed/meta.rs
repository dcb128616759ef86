//! [`AnyMeta`]: job metadata of any type, behind one type.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::{JobId, JobMeta};

/// The metadata of a job from a [`BoxPicker`](super::BoxPicker): its id and
/// attempt, with the picker's own metadata inside.
///
/// Cheap to clone (a reference count). The boxed picker and saver take the
/// original back out with [`downcast_ref`](Self::downcast_ref) when they
/// release or save the job.
///
/// ```
/// use pjp_core::boxed::AnyMeta;
/// use pjp_core::{JobId, JobMeta};
///
/// let meta = AnyMeta::new(JobId::new(7));
/// assert_eq!(meta.job_id(), JobId::new(7));
/// assert_eq!(meta.downcast_ref::<JobId>(), Some(&JobId::new(7)));
/// assert_eq!(meta.downcast_ref::<u32>(), None);
/// // Erasing twice changes nothing; an `AnyMeta` is also an `AnyMeta`.
/// let again = AnyMeta::new(meta.clone());
/// assert_eq!(again.downcast_ref::<JobId>(), Some(&JobId::new(7)));
/// assert!(again.downcast_ref::<AnyMeta>().is_some());
/// ```
#[derive(Clone)]
pub struct AnyMeta(Arc<dyn ErasedMeta>);

/// What a concrete metadata type provides once erased.
trait ErasedMeta: Send + Sync {
    fn job_id(&self) -> JobId;
    fn attempt(&self) -> u32;
    fn as_any(&self) -> &dyn Any;
    fn type_name(&self) -> &'static str;
}

impl<M: JobMeta> ErasedMeta for M {
    fn job_id(&self) -> JobId {
        JobMeta::job_id(self)
    }

    fn attempt(&self) -> u32 {
        JobMeta::attempt(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}

impl AnyMeta {
    /// Erases `meta`. An `AnyMeta` stays as it is (boxing twice would hide
    /// the original).
    pub fn new<M: JobMeta>(meta: M) -> Self {
        match (&meta as &dyn Any).downcast_ref::<Self>() {
            Some(erased) => erased.clone(),
            None => Self(Arc::new(meta)),
        }
    }

    /// The original metadata, if it is an `M`; or this `AnyMeta` itself when
    /// `M` is `AnyMeta` (so a saver written for `AnyMeta` takes any job).
    pub fn downcast_ref<M: 'static>(&self) -> Option<&M> {
        match (self as &dyn Any).downcast_ref::<M>() {
            Some(me) => Some(me),
            None => self.0.as_any().downcast_ref(),
        }
    }

    /// The name of the original metadata's type (for error messages).
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
}

impl JobMeta for AnyMeta {
    fn job_id(&self) -> JobId {
        self.0.job_id()
    }

    fn attempt(&self) -> u32 {
        self.0.attempt()
    }
}

impl fmt::Debug for AnyMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyMeta")
            .field("job_id", &self.0.job_id())
            .field("attempt", &self.0.attempt())
            .field("type", &self.0.type_name())
            .finish()
    }
}
