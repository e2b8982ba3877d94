import { KubeConfig } from "@kubernetes/client-node";
import { InvalidArgumentError, errorMessage } from "../errors.js";

export interface LoadKubeConfigOptions {
  /** A kubeconfig file; wins over the in-cluster service account, like kubectl's --kubeconfig. */
  kubeconfigPath?: string;
}

/**
 * The Kubernetes credentials of the pod watcher: the given kubeconfig file, else the pod's service
 * account when running in a cluster (KUBERNETES_SERVICE_HOST is set), else undefined (watcher disabled,
 * e.g. `goulette dev` on a laptop).
 */
export function loadKubeConfig(opts: LoadKubeConfigOptions): KubeConfig | undefined {
  if (opts.kubeconfigPath) {
    const config = new KubeConfig();
    try {
      config.loadFromFile(opts.kubeconfigPath);
    } catch (err) {
      throw new InvalidArgumentError(`cannot load kubeconfig ${opts.kubeconfigPath}: ${errorMessage(err)}`);
    }
    if (!config.getCurrentCluster()) {
      throw new InvalidArgumentError(
        `kubeconfig ${opts.kubeconfigPath} has no current context with a cluster`,
      );
    }
    return config;
  }
  if (process.env.KUBERNETES_SERVICE_HOST) {
    const config = new KubeConfig();
    config.loadFromCluster();
    return config;
  }
  return undefined;
}
