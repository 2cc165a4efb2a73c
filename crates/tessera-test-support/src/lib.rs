//! Test harness: a real `redis-server` on a free port, and a real Tessera
//! server on `127.0.0.1:0`, talked to over gRPC. No fixed ports, no sleeps
//! to wait for readiness: health is polled.
#![allow(dead_code)]

pub mod hostile_cases;
pub mod vectors;

mod clients;
mod examples;
mod redis;
mod servers;

pub use clients::*;
pub use examples::*;
pub use redis::*;
pub use servers::*;

/// A port that was free a moment ago (bind to 0, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Run an async scenario on both stores as two tests.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Redis).await
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_and_the_test_key_loads() {
        let port = free_port();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        let key = TestKey::new();
        assert!(!key.keyset().signer.kid.is_empty());
    }
}
