import { Suspense, useEffect, useRef } from 'react';
import { Link, Outlet, useLocation, useNavigate } from 'react-router';
import {
  AppShell,
  Avatar,
  Box,
  Burger,
  Group,
  Menu,
  NavLink,
  ScrollArea,
  Text,
  UnstyledButton,
} from '@mantine/core';
import { useDisclosure, useMediaQuery } from '@mantine/hooks';
import { useAuth, useCurrentUser } from '../auth/AuthContext';
import { FullPageLoader } from '../auth/guards';
import { displayName } from '../components/format';
import { ErrorBanner } from '../errors/ErrorBanner';
import { errorStore } from '../errors/errorStore';
import { MODULES } from '../modules';

interface NavItem {
  to: string;
  label: string;
  exact?: boolean;
}

function isActive(pathname: string, item: NavItem): boolean {
  if (item.exact) return pathname === item.to;
  return pathname === item.to || pathname.startsWith(`${item.to}/`);
}

export function AppLayout() {
  const user = useCurrentUser();
  const { signOut } = useAuth();
  const navigate = useNavigate();
  const location = useLocation();
  const [navOpened, nav] = useDisclosure(false);
  // Below the `sm` breakpoint the navbar slides off-screen when closed; it must then also leave
  // the tab order and the accessibility tree.
  const phone = useMediaQuery('(max-width: 47.99em)') ?? false;
  const navHidden = phone && !navOpened;
  const main = useRef<HTMLElement>(null);
  const firstPath = useRef(location.pathname);

  useEffect(() => {
    nav.close();
    // Move focus to the new page so screen readers and keyboard users start at its content.
    if (location.pathname !== firstPath.current) {
      firstPath.current = '';
      main.current?.focus({ preventScroll: false });
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [location.pathname]);

  const mainItems: NavItem[] = [
    { to: '/', label: 'Home', exact: true },
    ...MODULES.map((m) => ({ to: `/${m.path}`, label: m.label })),
  ];
  const adminItems: NavItem[] = [
    { to: '/admin/users', label: 'Users' },
    { to: '/admin/audit', label: 'Audit log' },
    ...MODULES.flatMap((m) => m.adminLinks ?? []),
  ];

  async function handleSignOut() {
    try {
      await signOut();
    } catch (error) {
      errorStore.report(error);
    }
    navigate('/signin', { replace: true });
  }

  const renderItem = (item: NavItem) => {
    const active = isActive(location.pathname, item);
    return (
      <NavLink
        key={item.to}
        component={Link}
        to={item.to}
        label={item.label}
        active={active}
        aria-current={active ? 'page' : undefined}
      />
    );
  };

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to main content
      </a>
      <AppShell
        header={{ height: 56 }}
        navbar={{ width: 230, breakpoint: 'sm', collapsed: { mobile: !navOpened } }}
        padding="md"
      >
        <AppShell.Header>
          <Group h="100%" px="md" justify="space-between" wrap="nowrap">
            <Group gap="sm" wrap="nowrap">
              <Burger
                opened={navOpened}
                onClick={nav.toggle}
                hiddenFrom="sm"
                size="sm"
                aria-label={navOpened ? 'Close navigation' : 'Open navigation'}
                aria-expanded={navOpened}
                aria-controls="main-navigation"
              />
              <Text component={Link} to="/" fw={700} size="lg" c="inherit" td="none">
                OpsDeck
              </Text>
            </Group>
            <Group gap="sm" wrap="nowrap">
              {MODULES.map(({ path, HeaderAction }) => (HeaderAction ? <HeaderAction key={path} /> : null))}
              <Menu position="bottom-end" width={220} withinPortal>
                <Menu.Target>
                  {/* The name comes from the content, not aria-label, so it contains the
                      visible text (WCAG 2.5.3 label in name) at every width. */}
                  <UnstyledButton className="account-menu-button">
                    <span className="visually-hidden">Account menu for {displayName(user)}</span>
                    <Group gap="xs" wrap="nowrap" aria-hidden="true">
                      <Avatar size="sm" radius="xl" color="indigo" name={displayName(user)} />
                      <Text size="sm" visibleFrom="xs" maw={180} truncate="end">
                        {displayName(user)}
                      </Text>
                    </Group>
                  </UnstyledButton>
                </Menu.Target>
                <Menu.Dropdown>
                  <Menu.Label>
                    Signed in as <strong>{user.username}</strong>
                  </Menu.Label>
                  <Menu.Item component={Link} to="/account">
                    Account settings
                  </Menu.Item>
                  <Menu.Divider />
                  <Menu.Item color="var(--mantine-color-red-text)" onClick={() => void handleSignOut()}>
                    Sign out
                  </Menu.Item>
                </Menu.Dropdown>
              </Menu>
            </Group>
          </Group>
        </AppShell.Header>

        <AppShell.Navbar
          p="xs"
          id="main-navigation"
          aria-label="Main navigation"
          inert={navHidden}
          className={navHidden ? 'nav-hidden' : undefined}
        >
          <AppShell.Section grow component={ScrollArea}>
            {mainItems.map(renderItem)}
            {user.role === 'admin' ? (
              <>
                <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" pt="md" pb={4}>
                  Admin
                </Text>
                {adminItems.map(renderItem)}
              </>
            ) : null}
          </AppShell.Section>
          <AppShell.Section>
            {renderItem({ to: '/account', label: 'Account' })}
            <NavLink
              component="button"
              type="button"
              label="Sign out"
              onClick={() => void handleSignOut()}
              hiddenFrom="sm"
            />
          </AppShell.Section>
        </AppShell.Navbar>

        <AppShell.Main id="main" ref={main} tabIndex={-1} className="app-main">
          <Box maw={1200}>
            <ErrorBanner />
            <Suspense fallback={<FullPageLoader />}>
              <Outlet />
            </Suspense>
          </Box>
        </AppShell.Main>
      </AppShell>
    </>
  );
}
