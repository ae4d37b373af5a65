import { createRouter, createWebHistory } from 'vue-router'
import { session, token } from './session'
import BoardView from './views/BoardView.vue'
import LoginView from './views/LoginView.vue'

// Each path here is also served by the hub (api/console.py PAGES), so a reload lands here.
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', component: BoardView },
    { path: '/login', component: LoginView, meta: { public: true } },
    { path: '/incidents/:id', component: () => import('./views/IncidentView.vue'),
      props: (route) => ({ id: Number(route.params.id) }) },
    { path: '/map', component: () => import('./views/MapView.vue') },
    { path: '/devices', component: () => import('./views/DevicesView.vue') },
    { path: '/stats', component: () => import('./views/StatsView.vue') },
    { path: '/rules', component: () => import('./views/RulesView.vue') },
    { path: '/departments', component: () => import('./views/DepartmentsView.vue') },
    // The wall (大屏): the whole screen, without the console's bar or popup.
    { path: '/wall', component: () => import('./views/WallView.vue'), meta: { bare: true } },
  ],
})

router.beforeEach((to) => {
  if (to.meta.public) return true
  // A link from a message (/incidents/42) opens after the token is given.
  if (!token()) return { path: '/login', query: to.fullPath === '/' ? {} : { next: to.fullPath } }
  return session.me ? true : undefined
})
