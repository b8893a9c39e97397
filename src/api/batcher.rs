//! One model, many concurrent requests: requests queue their inputs, a dedicated thread runs
//! whatever has queued up as one batch (up to a maximum) and answers each request.
//!
//! No artificial wait: while a batch runs, new requests pile up and become the next batch, so a
//! lone request is answered at once and a busy server batches by itself.

use std::panic::AssertUnwindSafe;

use model_core::Prediction;
use model_core::data::preprocess::ModelInput;
use model_core::infer::Predictor;
use tokio::sync::{mpsc, oneshot};

struct Job {
    input: ModelInput,
    reply: oneshot::Sender<Result<Prediction, String>>,
}

/// Handle to the batching thread; cheap to share. The thread ends when the last handle drops.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

/// The queue is full: the server is at capacity.
#[derive(Debug)]
pub struct Busy;

impl Batcher {
    /// Starts the thread that owns `predictor`. `queue` bounds the waiting requests.
    pub fn start(predictor: Predictor, max_batch: usize, queue: usize) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Job>(queue.max(1));
        let max_batch = max_batch.max(1);
        std::thread::Builder::new().name("predict-batcher".into()).spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < max_batch {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let (inputs, replies): (Vec<_>, Vec<_>) =
                    jobs.into_iter().map(|j| (j.input, j.reply)).unzip();
                tracing::debug!(batch = inputs.len(), "predicting");
                // A panic in the backend must not take the server down with it.
                let result =
                    std::panic::catch_unwind(AssertUnwindSafe(|| predictor.predict_batch(&inputs)));
                match result {
                    Ok(Ok(preds)) => {
                        for (r, p) in replies.into_iter().zip(preds) {
                            let _ = r.send(Ok(p));
                        }
                    }
                    Ok(Err(e)) => {
                        replies.into_iter().for_each(|r| drop(r.send(Err(e.to_string()))))
                    }
                    Err(_) => replies
                        .into_iter()
                        .for_each(|r| drop(r.send(Err("the model panicked".to_string())))),
                }
            }
        })?;
        Ok(Self { tx })
    }

    /// Queues one input; the receiver gets its prediction. `Err(Busy)` when the queue is full.
    pub fn submit(
        &self,
        input: ModelInput,
    ) -> Result<oneshot::Receiver<Result<Prediction, String>>, Busy> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(Job { input, reply }).map_err(|_| Busy)?;
        Ok(rx)
    }

    /// Requests waiting for the model now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}
