// The seed's first usage example ("基本使用"), as the README shows it; test/readme.test.tsx runs it.
// #region readme
import { usePortDiscovery } from 'portd/react';

function MyComponent() {
    const {
        currentPort,
        isInitialized,
        healthStatus,
        handlePortConflict,
        performHealthCheck,
    } = usePortDiscovery({
        autoStart: true,
        onPortChange: (newPort, oldPort) => {
            console.log(`Port changed: ${oldPort} -> ${newPort}`);
        },
        onPortConflict: (port, service) => {
            console.log(`Port conflict detected: ${port} for ${service}`);
        },
    });

    return (
        <div>
            <p>Current Port: {currentPort}</p>
            <p>Status: {healthStatus}</p>
            <button onClick={() => performHealthCheck()}>
                Check Health
            </button>
        </div>
    );
}
// #endregion readme

export { MyComponent };
