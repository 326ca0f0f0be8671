import { lazy, type ComponentType } from 'react';
import { ImagesHomeSummary } from './pages/images/ImagesHomeSummary';
import { DeclareIncidentAction } from './pages/incidents/DeclareIncidentAction';
import { IncidentsHomeSummary } from './pages/incidents/IncidentsHomeSummary';

/**
 * The pages each OpsDeck module adds to the shell: one entry here gives a module its nav link,
 * its route (`/<path>/*`) and its card on the Home page. A module replaces its placeholder with
 * a lazy() page of its own when it is built.
 */
export interface ModuleEntry {
  path: string;
  label: string;
  description: string;
  Page: ComponentType;
  /** A line of live figures for the module's Home card; keep it to one cheap request. */
  Summary?: ComponentType;
  /** A control in the shell's header on every page (keep it small: it loads with the shell). */
  HeaderAction?: ComponentType;
  /** The module's admin pages, listed under "Admin" in the navigation for admins. */
  adminLinks?: { to: string; label: string }[];
}

export const MODULES: ModuleEntry[] = [
  {
    path: 'images',
    label: 'Images',
    description: 'Batches of image URLs and uploads, processed by background workers.',
    Page: lazy(() => import('./pages/images/ImagesPage')),
    Summary: ImagesHomeSummary,
  },
  {
    path: 'incidents',
    label: 'Incidents',
    description: 'Incidents with severity, status workflow, assignees, comments and a timeline.',
    Page: lazy(() => import('./pages/incidents/IncidentsPage')),
    Summary: IncidentsHomeSummary,
    HeaderAction: DeclareIncidentAction,
    adminLinks: [
      { to: '/incidents/admin/categories', label: 'Incident categories' },
      { to: '/incidents/admin/tags', label: 'Incident tags' },
      { to: '/incidents/admin/templates', label: 'Postmortem templates' },
      { to: '/incidents/admin/integrations', label: 'Alert integrations' },
      { to: '/incidents/admin/webhooks', label: 'Incident webhooks' },
    ],
  },
  {
    path: 'chat',
    label: 'Chat',
    description: 'Rooms, direct messages, presence and a room for every incident.',
    Page: lazy(() => import('./pages/chat/ChatPage')),
  },
];
