/** The tenant every caller belongs to while no API keys are configured. */
export const OPEN_TENANT_ID = 'default';

/** Who is calling, as the API-key guard established it for this request. */
export interface RequestTenant {
  id: string;
  /** false while the service runs open (no API keys configured). */
  authenticated: boolean;
}

export interface RequestWithTenant {
  tenant?: RequestTenant;
}

/**
 * The id of the tenant the request belongs to. A route reached without the API-key guard having
 * run is a wiring bug, so it fails rather than guess a tenant.
 */
export function tenantIdOf(request: RequestWithTenant): string {
  if (!request.tenant) throw new Error('No tenant on the request: is ApiKeyGuard registered before this route?');
  return request.tenant.id;
}
