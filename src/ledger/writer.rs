//! The single writer: drains the queue in batches, runs each command in a savepoint,
//! commits once, then answers every caller (group commit).

use jiff::Timestamp;
use tokio::sync::mpsc;

use super::{Error, Job, Outcome, Seal, apply};
use crate::audit::checkpoint::Signer;
use crate::{
    clock,
    store::{Db, WriteTx},
};

/// The most commands one transaction takes: enough to amortise the fsync, few enough
/// that one batch's latency stays small.
const MAX_BATCH: usize = 256;

pub(super) async fn run(db: Db, mut jobs: mpsc::Receiver<Job>, signer: Option<Signer>) {
    let seal = Seal(());
    let mut last = Timestamp::UNIX_EPOCH;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let replies = run_batch(
            &db,
            &seal,
            signer.as_ref(),
            &mut last,
            std::mem::take(&mut batch),
        )
        .await;
        for (reply, result) in replies {
            // A caller that stopped waiting still had its change committed; nothing to do.
            let _ = reply.send(result);
        }
    }
}

type Reply = (
    tokio::sync::oneshot::Sender<Result<Outcome, Error>>,
    Result<Outcome, Error>,
);

/// Runs one batch in one transaction. A command that fails is rolled back to its
/// savepoint alone; a failure of the transaction itself fails every command in it.
async fn run_batch(
    db: &Db,
    seal: &Seal,
    signer: Option<&Signer>,
    last: &mut Timestamp,
    jobs: Vec<Job>,
) -> Vec<Reply> {
    let mut tx = match WriteTx::begin(db, seal).await {
        Ok(tx) => tx,
        Err(e) => return fail_all(jobs.into_iter().map(|j| j.reply), &e.into()),
    };
    let mut state = match apply::State::load(&mut tx).await {
        Ok(s) => s,
        Err(e) => return fail_all(jobs.into_iter().map(|j| j.reply), &e),
    };
    let start_size = state.next_idx;
    let mut results: Vec<Reply> = Vec::with_capacity(jobs.len());
    let mut pending = jobs.into_iter();
    while let Some(Job {
        ctx,
        command,
        reply,
    }) = pending.next()
    {
        // Time never runs backwards inside the log, even if the wall clock does.
        let now = clock::now().max(*last);
        *last = now;
        let saved = state.clone();
        let outcome = match tx.savepoint().await {
            Ok(()) => apply::apply(&mut tx, &mut state, &ctx, command, now, signer).await,
            Err(e) => Err(e.into()),
        };
        let settled = if outcome.is_ok() {
            tx.release().await
        } else {
            state = saved;
            tx.rollback_to_savepoint().await
        };
        results.push((reply, outcome));
        if let Err(e) = settled {
            let everyone = results
                .into_iter()
                .map(|(r, _)| r)
                .chain(pending.map(|j| j.reply));
            return fail_all(everyone, &e.into());
        }
    }
    let finished = async {
        if state.next_idx != start_size || state.rebuilt {
            state.save_head(&mut tx).await?;
        }
        tx.commit().await.map_err(Error::from)
    }
    .await;
    match finished {
        Ok(()) => results,
        Err(e) => fail_all(results.into_iter().map(|(r, _)| r), &e),
    }
}

fn fail_all(
    replies: impl Iterator<Item = tokio::sync::oneshot::Sender<Result<Outcome, Error>>>,
    error: &Error,
) -> Vec<Reply> {
    let reason = error.to_string();
    tracing::error!(error = %reason, "a write batch failed and was rolled back");
    replies
        .map(|r| (r, Err(Error::NotSaved(reason.clone()))))
        .collect()
}
