// The Swift concurrency runtime's global-enqueue hook, reached by symbol at link time.
//
// SwiftNIO installs its event loops as Swift's global executor by finding this variable with dlsym, which finds
// nothing in sensgate's static executable (the runtime's symbols are not exported from it), so sensgate sets the
// hook itself. The variable is part of the runtime's ABI (swift/Runtime/Concurrency.h).
#ifndef SENSGATE_CSWIFTRUNTIME_SHIM_H
#define SENSGATE_CSWIFTRUNTIME_SHIM_H

extern void *swift_task_enqueueGlobal_hook;

static inline void **sg_swift_task_enqueue_global_hook(void) {
    return &swift_task_enqueueGlobal_hook;
}

#endif
