//! Qdrant client errors as the port's [`IndexError`]: what the caller should do next.

use qdrant_client::QdrantError;
use tonic::Code;
use twin_engine::ports::IndexError;

/// A request Qdrant refused as malformed is `Invalid` (retrying will not help); anything else —
/// transport, timeouts, overload, server errors — is `Unavailable` (retry later).
pub(super) fn from_qdrant(action: &str, error: QdrantError) -> IndexError {
    let refused = match &error {
        QdrantError::ResponseError { status } => {
            matches!(status.code(), Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange)
        }
        QdrantError::ConversionError(_) | QdrantError::InvalidUri(_) => true,
        _ => false,
    };
    if refused {
        IndexError::Invalid(format!("Qdrant refused to {action}: {error}"))
    } else {
        unavailable(action, error)
    }
}

pub(super) fn unavailable(action: &str, error: QdrantError) -> IndexError {
    IndexError::Unavailable(format!("Qdrant could not {action}: {error}"))
}
