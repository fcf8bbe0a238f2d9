//! The standard gRPC health service (`grpc.health.v1.Health`): what
//! txn-server tells load balancers and container health checks.
//!
//! The whole server (service `""`) and `api.TransactionService` answer
//! NOT_SERVING until the backend is open (PostgreSQL connected and
//! migrated, or the file replayed), SERVING from then on, and NOT_SERVING
//! again while a batch failed and the database still does not answer.
//!
//! The service is on the gRPC port, behind its mutual TLS like every call,
//! but not behind the bearer token: a probe carries a client certificate,
//! not a token, and the answer tells nothing but these statuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kvs_proto::api::transaction_service_server::SERVICE_NAME;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health as HealthRpc, HealthServer};
use tonic_health::server::HealthReporter;

/// The services whose status is reported: the whole server, and the one
/// service it has.
pub const SERVICES: [&str; 2] = ["", SERVICE_NAME];

/// Sets what the health service answers; clones share it.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    /// What was last reported, so that watchers hear of changes only.
    serving: Arc<AtomicBool>,
}

impl Health {
    /// The reporter, NOT_SERVING, and the service that answers for it.
    pub async fn not_serving() -> (Health, HealthServer<impl HealthRpc>) {
        let (reporter, service) = tonic_health::server::health_reporter();
        for name in SERVICES {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let health = Health {
            reporter,
            serving: Arc::new(AtomicBool::new(false)),
        };
        (health, service)
    }

    /// Reports SERVING or NOT_SERVING, and logs a change.
    pub async fn set(&self, serving: bool) {
        if self.serving.swap(serving, Ordering::Relaxed) == serving {
            return;
        }
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in SERVICES {
            self.reporter.set_service_status(name, status).await;
        }
        if serving {
            tracing::info!("health: SERVING");
        } else {
            tracing::warn!("health: NOT_SERVING until the log answers again");
        }
    }
}
