import type { components } from './schema';

type Schemas = components['schemas'];
export type User = Schemas['UserOut'];
export type Role = User['role'];
export type Session = Schemas['SessionOut'];
export type ApiToken = Schemas['ApiTokenOut'];
export type ApiTokenCreated = Schemas['ApiTokenCreated'];
export type UserPage = Schemas['UserPage'];
export type AuditEntry = Schemas['AuditEntryOut'];
export type AuditPage = Schemas['AuditPage'];
export type ChainStatus = Schemas['ChainStatus'];

export interface Readiness {
  status: string;
  checks: Record<string, string>;
  failing: string[];
}

export type BatchSummary = Schemas['BatchSummary'];
export type Batch = Schemas['BatchOut'];
export type BatchPage = Schemas['BatchPage'];
export type BatchProduct = Schemas['ProductOut'];
export type BatchImage = Schemas['ImageOut'];
export type RetryResult = Schemas['RetryOut'];
export type BatchStatus = BatchSummary['status'];
export type ImageStatus = BatchImage['status'];
export type WebhookStatus = BatchSummary['webhook']['status'];
