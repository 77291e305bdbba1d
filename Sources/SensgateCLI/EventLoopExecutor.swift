internal import CSwiftRuntime
import NIOCore
import NIOPosix

/// Runs Swift tasks on NIO's event loops instead of a second thread pool, so a request's task and its connection
/// share threads: answering does not cross to another pool and back.
///
/// SwiftNIO offers this (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`),
/// but finds the runtime's hook with `dlsym`, which finds nothing in a static executable: measured, the shipped
/// binary ran every task on Dispatch's pool (a third of its CPU on `com.apple.root.default-qos` threads). So the
/// hook is set here the same way NIO sets it, through the symbol itself.
enum EventLoopExecutor {
    private typealias Hook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void

    /// Installs the hook, once, before any task is started; later calls do nothing.
    /// - Returns: Whether tasks now run on NIO's event loops.
    @discardableResult
    static func install() -> Bool {
        guard let slot = sg_swift_task_enqueue_global_hook(), slot.pointee == nil else { return false }
        let hook: Hook = { job, _ in
            // `any()` stays on the current event loop when called from one of the group's threads.
            MultiThreadedEventLoopGroup.singleton.any().enqueue(ExecutorJob(job))
        }
        slot.pointee = unsafeBitCast(hook, to: UnsafeMutableRawPointer.self)
        return true
    }
}
