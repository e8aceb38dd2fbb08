//! InitProducerId for idempotent producers. Transactions are not supported: a transactional
//! id is refused with a message saying so.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use tracing::error;

use super::RequestContext;

pub async fn handle(
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let fail = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.is_some() {
        // Java clients report UNSUPPORTED_VERSION here as "the broker does not support
        // transactions", which is the truth.
        return fail(ResponseError::UnsupportedVersion);
    }
    let (pid, epoch) = if ctx.api_version >= 3 {
        (req.producer_id.0, req.producer_epoch)
    } else {
        (-1, -1)
    };
    match ctx.shared.producer_ids().init(pid, epoch) {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_error_code(0)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => {
            error!(error = %e, "cannot persist producer id allocation");
            fail(ResponseError::KafkaStorageError)
        }
    }
}
