//! One tower layer for the gRPC port's checks: [`Wrap`] hands each
//! service it wraps a clone of its state, and each check is the
//! `tower::Service` impl of its [`Wrapped`] (callers, caller budgets,
//! stream caps).

/// A tower layer that wraps a service with a clone of `T`.
#[derive(Clone, Default)]
pub(crate) struct Wrap<T>(pub(crate) T);

/// A service wrapped by [`Wrap`]: the inner service and the layer's state.
#[derive(Clone)]
pub(crate) struct Wrapped<T, S> {
    pub(crate) inner: S,
    pub(crate) state: T,
}

impl<T: Clone, S> tower::Layer<S> for Wrap<T> {
    type Service = Wrapped<T, S>;
    fn layer(&self, inner: S) -> Wrapped<T, S> {
        Wrapped {
            inner,
            state: self.0.clone(),
        }
    }
}
