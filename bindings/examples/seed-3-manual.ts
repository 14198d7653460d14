// The seed's third usage example ("手动服务操作"), as the README shows it; test/readme.test.tsx
// runs it (importing this module runs it, top-level await).
// #region readme
import { portDiscoveryService } from 'portd';

// 初始化服务
await portDiscoveryService.initialize();

// 分配端口
const port = await portDiscoveryService.allocatePort('my-service');

// 检查端口可用性
const available = await portDiscoveryService.isPortAvailable(1421);

// 处理端口冲突
const newPort = await portDiscoveryService.handlePortConflict('my-service');
// #endregion readme

export { available, newPort, port };
