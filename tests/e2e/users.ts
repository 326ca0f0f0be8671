export interface E2EUser {
  username: string;
  email: string;
  password: string;
  displayName?: string;
  admin?: boolean;
}

/** Accounts made with `opsdeck users create` before the server starts; one per scenario. */
export const USERS = {
  admin: {
    username: 'e2e-admin',
    email: 'e2e-admin@example.com',
    password: 'quiet-harbour-lantern-17',
    displayName: 'Ada Admin',
    admin: true,
  },
  member: {
    username: 'e2e-member',
    email: 'e2e-member@example.com',
    password: 'amber-falcon-meadow-42',
    displayName: 'Max Member',
  },
  twofa: {
    username: 'e2e-twofa',
    email: 'e2e-twofa@example.com',
    password: 'copper-willow-sunrise-88',
    admin: true,
  },
  xss: {
    username: 'e2e-xss',
    email: 'e2e-xss@example.com',
    password: 'violet-canyon-thunder-63',
    displayName: '<img src=x onerror=alert(1)>',
  },
} satisfies Record<string, E2EUser>;
