// The seed's second usage example ("使用 Provider"), as the README shows it; test/readme.test.tsx runs it.
// #region readme
import { PortDiscoveryProvider } from 'portd/react';
import { HealthCheck } from 'portd/react';
import { ConnectionStatus } from 'portd/react';

function App() {
    return (
        <PortDiscoveryProvider>
            <div>
                <HealthCheck showDetails={true} />
                <ConnectionStatus showDetails={true} />
            </div>
        </PortDiscoveryProvider>
    );
}
// #endregion readme

export { App };
