/** Status conditions as Kubernetes API conventions have them: lastTransitionTime moves only when status does. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export function setCondition(previous: readonly Condition[], next: Omit<Condition, 'lastTransitionTime'>, now: string): Condition {
  const old = previous.find((c) => c.type === next.type);
  return { ...next, lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : now };
}
