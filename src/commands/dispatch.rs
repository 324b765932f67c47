//! Where an acting command runs: in the daemon, through its control socket, when one runs;
//! otherwise in this process, under the state-store lease. When the daemon holds the lease
//! but its socket cannot be reached, nothing is done (exit 2): never two processes swapping
//! one container. Under the lease, start-up recovery runs first, as in the daemon.

use super::{Context, EXIT_CANNOT_RUN, act};
use crate::config::Settings;
use crate::control::lease::{Lease, LeaseError};
use crate::control::socket::{self, CallError, Request};

/// Runs `request` and prints its answer; returns the exit status.
pub async fn run(settings: Settings, docker_host: Option<&str>, request: Request) -> u8 {
    let path = settings.control.socket.clone();
    let unreachable = match socket::call(&path, &request).await {
        Ok(reply) => return reply.print(),
        Err(e @ CallError::NoAnswer { .. }) => {
            eprintln!(
                "ecr-deployd: {e}; the command may or may not have been carried out — look at `ecr-deployd status` and `history`"
            );
            return EXIT_CANNOT_RUN;
        }
        Err(CallError::Unreachable { source, .. }) => source,
    };
    // A dry run changes nothing: it needs no lease.
    let dry_run = matches!(request, Request::Sweep { dry_run: true });
    let lease = match Lease::try_acquire(&settings.state.path) {
        Ok(l) => Some(l),
        Err(LeaseError::Held { .. }) if dry_run => None,
        Err(LeaseError::Held { holder, .. }) => {
            eprintln!(
                "ecr-deployd: the state store {} is in use by {holder}, but the control socket {} cannot be reached ({unreachable}); nothing done — hint: [control] socket must name the daemon's socket, and this user needs root or the group ecr-deployd",
                settings.state.path.display(),
                path.display(),
            );
            return EXIT_CANNOT_RUN;
        }
        Err(e) => {
            eprintln!("ecr-deployd: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let ctx = match Context::new(settings, docker_host).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ecr-deployd: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    if lease.is_some() {
        // As the daemon does at start: a swap a crash interrupted is finished or undone
        // before this command acts on anything (SPEC §6).
        match ctx.executor.recover().await {
            Ok(0) => {}
            Ok(n) => eprintln!("ecr-deployd: {n} interrupted deployment(s) recovered first"),
            Err(e) => {
                eprintln!(
                    "ecr-deployd: an interrupted deployment could not be recovered ({e}); nothing done"
                );
                return EXIT_CANNOT_RUN;
            }
        }
    }
    let reply = act::handle(request, &ctx.registry, &ctx.executor, None).await;
    drop(lease);
    reply.print()
}
