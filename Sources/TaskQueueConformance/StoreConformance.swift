#if canImport(Testing)
import Foundation
import Testing
import TaskQueue
import TaskQueueTestSupport
#if canImport(Glibc)
import Glibc
#endif

// The store conformance suite: what every `TaskStore` backend must do, written
// against the protocol alone. Each case takes a factory that opens a new connection
// to one fresh database; a backend runs the suite by passing its own factory
// (`StoreConformanceSQLiteTests`, `PostgresStoreTests`).

package enum StoreConformance {
    package static let cases: [ConformanceCase] = [
        .init("insertTasks returns increasing ids and stores what it was given") { try insertReturnsIncreasingIDs($0) },
        .init("insertTasks is all-or-nothing") { try insertIsAllOrNothing($0) },
        .init("consecutive batches store each row's own values") { try consecutiveBatchesKeepEachRowsValues($0) },
        .init("insertTasks(kind:options:payloads:) stores each payload with the shared options") { try payloadBatchesShareOptions($0) },
        .init("claim order: priority desc, run_at, id; future run_at waits") { try claimOrder($0) },
        .init("claim order: a task ready at enqueue counts from its created_at") { try claimOrderMixesReadyAndDue($0) },
        .init("claimed rows are running, owned, attempts + 1") { try claimMarksRowsRunning($0) },
        .init("claim honours kinds, queues (nil = all) and limit") { try claimFilters($0) },
        .init("a second claimer never gets a running row (interleaved)") { try secondClaimerInterleaved($0) },
        .init("claimers on threads never share a task") { try concurrentClaimers($0) },
        .init("a stop sentinel bounds its supervisor's claims only") { try stopSentinelBound($0) },
        .init("insertStopSentinels addresses registered supervisors") { try insertStopSentinelsAddressing($0) },
        .init("fence: only the owner's current attempt finishes a task") { try fenceOwnerAndAttempt($0) },
        .init("fence: a stale attempt after recovery changes nothing") { try fenceStaleAttemptAfterRecovery($0) },
        .init("fence: an owner whose row is gone can neither claim nor finish") { try unregisteredOwnerWritesNothing($0) },
        .init("released puts back without counting the attempt") { try releaseDecrementsAttempts($0) },
        .init("retry sets run_at and last_error") { try retrySetsRunAtAndError($0) },
        .init("final failure sets finished_at") { try finalFailure($0) },
        .init("finishAndClaim finishes and claims in one call") { try finishThenClaimInOneCall($0) },
        .init("a batch of outcomes: the fence judges each on its own") { try batchOfOutcomes($0) },
        .init("result bytes round-trip byte for byte") { try resultBytesRoundTrip($0) },
        .init("recoverProcess applies outcomes, deletes the row, cancels sentinels") { try recoverProcess($0) },
        .init("recoverProcess with the started task charges only that one") { try recoverKnowingTheStartedTask($0) },
        .init("recoverProcess finds every task claimed and not reported, across claims") { try recoverEveryUnreportedClaim($0) },
        .init("nextRunAt: the earliest future start among claimable tasks") { try nextRunAtFindsTheNextDelayedTask($0) },
        .init("registerProcess, processes and heartbeat") { try processesAndHeartbeat($0) },
        .init("tasks(filter) and stats") { try listingAndStats($0) },
        .init("Recovery.deathReason judges factory rows") { try deathReason($0) },
        .init("Recovery.recoverDead gives dead processes' tasks back") { try recoverDead($0) },
    ]
}
#endif
