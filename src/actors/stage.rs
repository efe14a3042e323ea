//! Supervision of the pipeline's actors.
//!
//! actix's `Supervisor` restarts an actor that stops itself, but not one
//! whose handler panicked: the panic ends the actor's task and its mailbox
//! closes. A [`Stage`] owns an actor's address and a factory; when a send
//! finds the mailbox closed it starts a fresh actor for later messages and
//! returns [`StageError`] for the message that was lost, so the task that
//! sent it is completed with a recoverable error instead of vanishing.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, MailboxError, Message};
use futures_util::FutureExt;
use tracing::error;

/// Failure of a message that got no reply from its actor.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StageError {
    #[error("the {stage} actor stopped before answering; it has been restarted")]
    Stopped { stage: &'static str },
    #[error("the {stage} actor did not answer in time")]
    Timeout { stage: &'static str },
    #[error("the {stage} actor panicked: {message}")]
    Panicked {
        stage: &'static str,
        message: String,
    },
}

/// One supervised actor of the pipeline.
pub struct Stage<A: Actor> {
    name: &'static str,
    addr: Mutex<Addr<A>>,
    factory: Box<dyn Fn() -> Addr<A> + Send + Sync>,
}

impl<A: Actor> Stage<A> {
    /// Starts the actor with `factory`, which is called again for every
    /// restart.
    pub fn start(
        name: &'static str,
        factory: impl Fn() -> Addr<A> + Send + Sync + 'static,
    ) -> Stage<A> {
        let addr = factory();
        Stage {
            name,
            addr: Mutex::new(addr),
            factory: Box::new(factory),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Returns the actor's address, restarting the actor first if it has
    /// stopped.
    pub fn addr(&self) -> Addr<A> {
        let mut addr = self
            .addr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !addr.connected() {
            error!(stage = self.name, "actor stopped; starting a new one");
            *addr = (self.factory)();
        }
        addr.clone()
    }

    /// Sends `message` and waits for the reply. Waits while the mailbox is
    /// full, which is the pipeline's back-pressure.
    pub async fn send<M>(&self, message: M) -> Result<M::Result, StageError>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let addr = self.addr();
        match addr.send(message).await {
            Ok(answer) => Ok(answer),
            Err(MailboxError::Closed) => {
                // Restart now rather than on the next send, so the next task
                // does not pay for it.
                drop(self.addr());
                Err(StageError::Stopped { stage: self.name })
            }
            Err(MailboxError::Timeout) => Err(StageError::Timeout { stage: self.name }),
        }
    }
}

impl<A: Actor> Stage<A> {
    /// Like [`Stage::send`], for messages whose handler runs under
    /// [`guard`]: both kinds of failure come back as one [`StageError`].
    pub async fn call<M, T>(&self, message: M) -> Result<T, StageError>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message<Result = Result<T, StageError>> + Send + 'static,
        T: Send,
    {
        self.send(message).await?
    }
}

/// Runs `future`, turning a panic inside it into [`StageError::Panicked`].
/// Handlers wrap their asynchronous work in it, so a bug hit by one task
/// fails that task alone.
pub async fn guard<T>(
    stage: &'static str,
    future: impl std::future::Future<Output = T>,
) -> Result<T, StageError> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|panic| StageError::Panicked {
            stage,
            message: panic_message(panic.as_ref()),
        })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Context, ResponseFuture};

    struct Flaky;

    impl Actor for Flaky {
        type Context = Context<Self>;
    }

    /// Panics in the handler itself when `crash` is set.
    struct Echo {
        value: u32,
        crash: bool,
    }

    impl Message for Echo {
        type Result = u32;
    }

    impl Handler<Echo> for Flaky {
        type Result = u32;

        fn handle(&mut self, message: Echo, _: &mut Context<Self>) -> u32 {
            if message.crash {
                panic!("handler bug for value {}", message.value);
            }
            message.value
        }
    }

    struct AsyncCrash;

    impl Message for AsyncCrash {
        type Result = Result<u32, StageError>;
    }

    impl Handler<AsyncCrash> for Flaky {
        type Result = ResponseFuture<Result<u32, StageError>>;

        fn handle(&mut self, _: AsyncCrash, _: &mut Context<Self>) -> Self::Result {
            Box::pin(guard("flaky", async {
                let values: Vec<u32> = Vec::new();
                let index = values.len() + 1;
                assert!(index < values.len(), "async handler bug");
                values[index]
            }))
        }
    }

    #[actix_rt::test]
    async fn panicking_handler_fails_message_and_restarts_actor() {
        let stage = Stage::start("flaky", || Flaky.start());
        assert_eq!(
            stage
                .send(Echo {
                    value: 1,
                    crash: false
                })
                .await,
            Ok(1)
        );

        let lost = stage
            .send(Echo {
                value: 2,
                crash: true,
            })
            .await;
        assert_eq!(lost, Err(StageError::Stopped { stage: "flaky" }));

        assert_eq!(
            stage
                .send(Echo {
                    value: 3,
                    crash: false
                })
                .await,
            Ok(3)
        );
    }

    #[actix_rt::test]
    async fn panic_in_async_work_becomes_error() {
        let stage = Stage::start("flaky", || Flaky.start());
        let answer = stage.send(AsyncCrash).await.unwrap();
        match answer {
            Err(StageError::Panicked { stage, message }) => {
                assert_eq!(stage, "flaky");
                assert!(message.contains("async handler bug"), "{message}");
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
        assert_eq!(
            stage
                .send(Echo {
                    value: 4,
                    crash: false
                })
                .await,
            Ok(4)
        );
    }
}
